// Failures that repeat while a retry loop runs (a disk that stays full, etcd that stays
// down) are logged as one episode: a line when the first failure comes, at most one
// summary line per 10 s while they go on, with how many there were, and one line when it
// works again. An outage then costs a few log lines, not several per second per process,
// and the lines that remain say when it started, how long it lasted and how often it failed.

import { performance } from 'node:perf_hooks';

/** The logger calls an episode makes (pino's shape, like the node's logger). */
export interface EpisodeLogger {
  warn(fields: object, message: string): void;
  error(fields: object, message: string): void;
}

export const EPISODE_SUMMARY_EVERY_MS = 10_000;

export interface EpisodeOptions {
  /** What fails, as the summary and recovery lines name it: "durable reservation writes". */
  what: string;
  /** Level of the first and summary lines. Default 'error'. Recovery is logged at warn. */
  level?: 'warn' | 'error';
  /** Fields every line of the episode carries (which node, which worker). */
  fields?: object;
  /** At most one summary line per this many ms. Default 10 s. */
  summaryEveryMs?: number;
  /** A monotonic clock, ms. Default performance.now (wall-clock steps cannot stretch an episode). */
  now?: () => number;
}

export class FailureEpisode {
  private readonly what: string;
  private readonly level: 'warn' | 'error';
  private readonly fields: object;
  private readonly summaryEveryMs: number;
  private readonly now: () => number;
  private startedAt: number | undefined;
  private lastLineAt = 0;
  private failures = 0;
  private failuresSinceLine = 0;

  constructor(
    private readonly logger: EpisodeLogger,
    options: EpisodeOptions,
  ) {
    this.what = options.what;
    this.level = options.level ?? 'error';
    this.fields = options.fields ?? {};
    this.summaryEveryMs = options.summaryEveryMs ?? EPISODE_SUMMARY_EVERY_MS;
    this.now = options.now ?? (() => performance.now());
  }

  /** Whether failures are going on (the last attempt failed). */
  get active(): boolean {
    return this.startedAt !== undefined;
  }

  /** Failures in the current episode (0 when none is going on). */
  get count(): number {
    return this.failures;
  }

  /**
   * One more failure. The first of an episode is logged as given; later ones are counted,
   * and one summary line is logged when the last line is at least summaryEveryMs old.
   */
  failed(message: string, fields: object = {}): void {
    const now = this.now();
    this.failures++;
    if (this.startedAt === undefined) {
      this.startedAt = now;
      this.lastLineAt = now;
      this.failuresSinceLine = 0;
      this.logger[this.level](loggable({ ...this.fields, ...fields }), message);
      return;
    }
    this.failuresSinceLine++;
    if (now - this.lastLineAt < this.summaryEveryMs) return;
    const forMs = Math.round(now - this.startedAt);
    this.logger[this.level](
      loggable({ ...this.fields, ...fields, failures: this.failures, failingForMs: forMs }),
      `${this.what} still failing after ${forMs} ms (${plural(this.failures, 'failure')}, ${this.failuresSinceLine} since the last line): ${message}`,
    );
    this.lastLineAt = now;
    this.failuresSinceLine = 0;
  }

  /** It worked: ends the episode with one line saying how long it lasted (nothing when none was going on). */
  recovered(then?: string, fields: object = {}): void {
    if (this.startedAt === undefined) return;
    const forMs = Math.round(this.now() - this.startedAt);
    this.logger.warn(
      loggable({ ...this.fields, ...fields, failures: this.failures, failedForMs: forMs }),
      `${this.what} recovered after ${forMs} ms (${plural(this.failures, 'failure')})${then === undefined ? '' : `: ${then}`}`,
    );
    this.reset();
  }

  /** The work stopped while still failing (closed, given up): one last line with the count. */
  abandoned(why: string, fields: object = {}): void {
    if (this.startedAt === undefined) return;
    const forMs = Math.round(this.now() - this.startedAt);
    this.logger.warn(
      loggable({ ...this.fields, ...fields, failures: this.failures, failingForMs: forMs }),
      `${this.what} failed for ${forMs} ms (${plural(this.failures, 'failure')}) until ${why}`,
    );
    this.reset();
  }

  private reset(): void {
    this.startedAt = undefined;
    this.failures = 0;
    this.failuresSinceLine = 0;
  }
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

/**
 * The fields without numbers that say nothing to a reader: NaN, ±Infinity, and
 * MAX_SAFE_INTEGER or beyond (used as "no bound" for a wait). Left out rather than logged.
 */
export function loggable(fields: object): object {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(fields)) {
    if (typeof value === 'number' && (!Number.isFinite(value) || Math.abs(value) >= Number.MAX_SAFE_INTEGER)) continue;
    out[key] = value;
  }
  return out;
}
