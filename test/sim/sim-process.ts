// One simulated server process: the runtime its fleet code runs on (FleetRuntime) and the
// node's clock, timer and sleep, all on the scheduler's virtual time. A process can be
// paused (SIGSTOP: what would run meanwhile runs when it resumes) and killed (SIGKILL: what
// would run never does). Its machine's clock is kept apart from the process: it drifts,
// steps back and jumps ahead, and a restarted process reads the same clock.

import type { FleetRuntime } from '../../src/fleet/runtime.js';
import type { NodeTimer } from '../../src/node/options.js';
import type { SimDelivery } from './memory-client.js';
import type { ScheduledEvent, Scheduler } from './scheduler.js';
import { prng } from '../support/seed.js';

/** A machine's clock: virtual time, plus a drift rate and the steps applied to it. */
export class MachineClock {
  /** ms added by steps (back: negative). */
  offsetMs = 0;

  constructor(
    private readonly scheduler: Scheduler,
    /** ms since the Unix epoch at virtual time 0. */
    private readonly epochMs: number,
    /** Parts per million the clock runs fast (+) or slow (−). */
    private readonly driftPpm: number,
  ) {}

  read(): number {
    const t = this.scheduler.now;
    return Math.floor(this.epochMs + t + (t * this.driftPpm) / 1e6 + this.offsetMs);
  }
}

/** A seed derived from the run's seed for one subsystem (FNV-1a over "seed/label"). */
export function subSeed(seed: number, label: string): number {
  let h = 0x811c9dc5;
  for (const c of `${seed}/${label}`) h = Math.imul(h ^ c.charCodeAt(0), 0x01000193) >>> 0;
  return h;
}

export class SimProcess implements SimDelivery {
  alive = true;
  /** Virtual ms until which the process is stopped. */
  pausedUntil = 0;
  readonly runtime: FleetRuntime;
  readonly timer: NodeTimer;
  private readonly random: () => number;

  constructor(
    readonly scheduler: Scheduler,
    /** The member (machine) this process runs on. */
    readonly id: number,
    readonly incarnation: number,
    readonly clock: MachineClock,
    seed: number,
  ) {
    this.random = prng(subSeed(seed, `process ${id}.${incarnation}`));
    const process = this;
    this.runtime = {
      now: () => scheduler.now,
      wall: () => clock.read(),
      // As a real timer: never sooner than 1 ms (a fence re-armed for a rounding error's worth must not fire at the same instant forever).
      after: (ms, fn) => cancelOf(scheduler.after(Math.max(1, ms), () => process.deliver(fn))),
      every: (ms, fn) => process.every(ms, fn),
      random: () => process.random(),
      instanceId: () => Array.from({ length: 16 }, () => Math.floor(process.random() * 16).toString(16)).join(''),
      self: () => ({ host: `sim-${id}`, pid: 1000 + incarnation, identity: undefined }),
    };
    this.timer = { every: (ms, tick) => process.every(ms, tick) };
  }

  get paused(): boolean {
    return this.scheduler.now < this.pausedUntil;
  }

  deliver(fn: () => void): void {
    if (!this.alive) return;
    if (this.paused) {
      this.scheduler.at(this.pausedUntil, () => this.deliver(fn));
      return;
    }
    fn();
  }

  /** A sleep on the process's timers (the node's startup waits). */
  sleep(ms: number): Promise<void> {
    return new Promise((resolve) => this.runtime.after(ms, resolve));
  }

  /**
   * A repeating timer. Fires at multiples of the period, so the timers of every process
   * with one period share instants (one settle for all of them); a paused process's timer
   * fires once when it resumes, as an interval does after SIGSTOP.
   */
  private every(ms: number, fn: () => void): { cancel(): void } {
    let event: ScheduledEvent | undefined;
    let cancelled = false;
    const arm = (at: number) => {
      event = this.scheduler.at(at, () => {
        if (cancelled || !this.alive) return;
        if (this.paused) {
          arm(this.pausedUntil);
          return;
        }
        fn();
        arm(nextMultiple(this.scheduler.now, ms));
      });
    };
    arm(nextMultiple(this.scheduler.now, ms));
    return {
      cancel: () => {
        cancelled = true;
        if (event !== undefined) event.cancelled = true;
      },
    };
  }
}

/** The first multiple of `period` strictly after `now` (a fractional period's rounding cannot land on `now` again). */
function nextMultiple(now: number, period: number): number {
  const next = (Math.floor(now / period) + 1) * period;
  return next > now ? next : next + period;
}

function cancelOf(event: ScheduledEvent): { cancel(): void } {
  return {
    cancel: () => {
      event.cancelled = true;
    },
  };
}
