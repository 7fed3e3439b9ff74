// A crash-safe node: a generator bounded by a durable time reservation.
//
// The node never issues an id whose timestamp is past R, the reservation last made
// durable in its state file. R is extended in the background, well before logical time
// reaches it, and only after the new record is on disk. After a crash, a restart or a
// clock step, the node resumes strictly after the R it finds — so no id is ever reissued,
// with no external database.

import { join } from 'node:path';
import { STATUS_CLOSED, STATUS_LIMIT_REACHED } from '../core/constants.js';
import { HailstoneError, InvalidArgumentError, checkInteger, describe } from '../errors.js';
import {
  createGenerator,
  DEFAULT_MAX_LEAD_MS,
  MAX_LEAD_MS_LIMIT,
  type Backend,
  type Generator,
  type GeneratorCounters,
} from '../generator.js';
import { DEFAULT_LAYOUT, type Layout, type WorkerOptions, type WorkerStripe, workerStripe } from '../layout.js';
import { writeDurably } from './durable-write.js';
import { type LockContext, type ProcessProbe, type StateLock, acquireLock, lockHolder, realProcesses } from './lock.js';
import { RecordError, type StateRecord, decodeRecord, encodeRecord, recordLayoutText, sameLayout } from './state-record.js';
import { type StorageFs, realStorage } from './storage.js';

/** A logger with pino's call shape, so a pino logger can be passed as is. */
export interface NodeLogger {
  info(fields: object, message: string): void;
  warn(fields: object, message: string): void;
  error(fields: object, message: string): void;
}

/** Warnings and errors as JSON lines on stderr; nothing at info. */
export const stderrLogger: NodeLogger = {
  info() {},
  warn(fields, message) {
    process.stderr.write(`${JSON.stringify({ level: 'warn', msg: message, ...fields })}\n`);
  },
  error(fields, message) {
    process.stderr.write(`${JSON.stringify({ level: 'error', msg: message, ...fields })}\n`);
  },
};

export interface NodeOptions {
  nodeId: number;
  /** Directory for the state and lock files. Local, durable storage; created if missing. */
  stateDir: string;
  backend?: Backend;
  layout?: Layout;
  worker?: WorkerOptions;
  /** Default 2000. */
  maxLeadMs?: number;
  /** How far ahead of the clock each durable reservation reaches. At most maxLeadMs. Default 1000. */
  reservationMs?: number;
  /** ms since the Unix epoch. Default Date.now. */
  clock?: () => number;
  /** Added to every clock reading: rehearse clock steps (drills, tests). Default 0. */
  clockSkewMs?: number;
  /**
   * How long the node may wait at startup for a clock that is behind the stored reservation
   * before it refuses to start with CLOCK_FAR_BEHIND. Default 0: refuse at once.
   */
  maxStartupWaitMs?: number;
  /** Start over from an unreadable or mismatched state file, as a first start. Default false. */
  resetState?: boolean;
  logger?: NodeLogger;
  /** File-system access (tests inject faults here). Default: the real file system. */
  fs?: StorageFs;
  /** Who this process is and whether a lock's owner still runs. Default: the real process table. */
  processes?: ProcessProbe;
  /** Waits `ms` of the clock's time. Default: a timer. */
  sleep?: (ms: number) => Promise<void>;
}

export interface NodeStatus {
  nodeId: number;
  worker: { index: number; count: number };
  stateFile: string;
  /** The durable reservation: no id has a later timestamp. */
  reservedUntil: number;
  /** reservedUntil minus the clock, ms. */
  reservationRemainingMs: number;
  /** How far logical time is ahead of the clock, ms (0 when it is not). */
  clockLeadMs: number;
  /** Holding the lock, no storage error since the last successful write, and the reservation ahead of the clock. */
  healthy: boolean;
  /** Why not healthy. */
  reason: string | undefined;
  renewals: number;
  storageErrors: number;
  lastStorageError: { code: string; message: string; at: number } | undefined;
  /** The node started without a state file (or with resetState). */
  firstStart: boolean;
  closed: boolean;
  /** Clock regressions, sequence exhaustions and refusals seen by the generator. */
  generator: GeneratorCounters;
}

export interface HailstoneNode {
  readonly backend: Backend;
  readonly layout: Layout;
  readonly nodeId: number;
  readonly worker: WorkerStripe;
  readonly maxLeadMs: number;
  readonly stateFile: string;
  nextId(): bigint;
  nextIdString(): string;
  fill(buffer: Uint8Array, offset?: number, count?: number): number;
  /** fill() that reports a refusal as a negative status instead of throwing (see Generator.tryFill). */
  tryFill(buffer: Uint8Array, offset?: number, count?: number): number;
  retryAfterMs(status: number): number | undefined;
  refusalOf(status: number): HailstoneError;
  lastTimestamp(): number | undefined;
  status(): NodeStatus;
  /** Stops renewing, waits for a write in progress and releases the lock. The state stays valid. */
  close(): Promise<void>;
}

export const DEFAULT_RESERVATION_MS = 1000;

export function stateFileName(nodeId: number, worker: WorkerStripe): string {
  return `node-${nodeId}.w${worker.index}-${worker.count}.state`;
}

const STATE_FILE_PATTERN = /^node-(\d+)\.w(\d+)-(\d+)\.state$/;
const RETRY_MIN_MS = 20;

function realSleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, Math.max(0, ms)));
}

function errorCode(error: unknown): string {
  return (error as NodeJS.ErrnoException | undefined)?.code ?? 'EUNKNOWN';
}

function iso(ms: number): string {
  return Math.abs(ms) <= 8.64e15 ? new Date(ms).toISOString() : String(ms);
}

class Node implements HailstoneNode {
  readonly backend: Backend;
  readonly layout: Layout;
  readonly nodeId: number;
  readonly worker: WorkerStripe;
  readonly maxLeadMs: number;
  readonly stateFile: string;
  private readonly reservationMs: number;
  private readonly gen: Generator;
  private readonly clock: () => number;
  private readonly fs: StorageFs;
  private readonly logger: NodeLogger;
  private readonly lock: StateLock;
  private readonly firstStart: boolean;
  private reservedUntil: number;
  private writing: Promise<void> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;
  private clockRegressionsLogged = 0;
  private renewals = 0;
  private storageErrors = 0;
  private failingSince: number | undefined;
  private retryAt = 0;
  private lastStorageError: NodeStatus['lastStorageError'];

  constructor(init: {
    gen: Generator;
    clock: () => number;
    fs: StorageFs;
    logger: NodeLogger;
    lock: StateLock;
    stateFile: string;
    reservationMs: number;
    reservedUntil: number;
    firstStart: boolean;
  }) {
    this.gen = init.gen;
    this.backend = init.gen.backend;
    this.layout = init.gen.layout;
    this.nodeId = init.gen.nodeId;
    this.worker = init.gen.worker;
    this.maxLeadMs = init.gen.maxLeadMs;
    this.clock = init.clock;
    this.fs = init.fs;
    this.logger = init.logger;
    this.lock = init.lock;
    this.stateFile = init.stateFile;
    this.reservationMs = init.reservationMs;
    this.reservedUntil = init.reservedUntil;
    this.firstStart = init.firstStart;
    // Check often enough that a renewal starts with half a window still reserved.
    const period = Math.max(5, Math.floor(this.reservationMs / 4));
    this.timer = setInterval(() => {
      this.maybeRenew();
      this.watchClock();
    }, period);
    this.timer.unref();
  }

  nextId(): bigint {
    if (this.closed) throw this.refusalOf(STATUS_CLOSED);
    try {
      return this.gen.nextId();
    } catch (error) {
      if (!(error instanceof HailstoneError) || error.code !== 'LIMIT_REACHED') throw error;
      this.maybeRenew(true);
      throw this.refusalOf(STATUS_LIMIT_REACHED);
    }
  }

  nextIdString(): string {
    return this.nextId().toString();
  }

  fill(buffer: Uint8Array, offset?: number, count?: number): number {
    const written = this.tryFill(buffer, offset, count);
    if (written < 0) throw this.refusalOf(written);
    return written;
  }

  tryFill(buffer: Uint8Array, offset = 0, count?: number): number {
    if (this.closed) return STATUS_CLOSED;
    const written = this.gen.tryFill(buffer, offset, count);
    // At the reservation: start extending it now rather than at the next timer tick.
    if (written === STATUS_LIMIT_REACHED) this.maybeRenew(true);
    return written;
  }

  retryAfterMs(status: number): number | undefined {
    if (status === STATUS_CLOSED) return undefined;
    if (status !== STATUS_LIMIT_REACHED) return this.gen.retryAfterMs(status);
    return this.failingSince !== undefined ? Math.max(RETRY_MIN_MS, this.retryAt - Date.now()) : RETRY_MIN_MS;
  }

  refusalOf(status: number): HailstoneError {
    if (status === STATUS_CLOSED) return new HailstoneError('CLOSED', `node ${this.nodeId} is closed; open it again with openNode`);
    if (status !== STATUS_LIMIT_REACHED) return this.gen.refusalOf(status);
    const retryAfterMs = this.retryAfterMs(status)!;
    const why =
      this.failingSince !== undefined
        ? `the reservation cannot be extended: storage is failing (${this.lastStorageError?.message ?? 'unknown error'})`
        : 'the reservation is being extended';
    return new HailstoneError('LIMIT_REACHED', `node ${this.nodeId} reached its durable reservation; ${why}; retry in ${retryAfterMs} ms`, {
      retryAfterMs,
    });
  }

  lastTimestamp(): number | undefined {
    return this.gen.lastTimestamp();
  }

  status(): NodeStatus {
    const now = this.clock();
    const logical = this.gen.lastTimestamp() ?? now;
    const reason = this.closed
      ? 'closed'
      : this.failingSince !== undefined
        ? `storage errors since ${iso(this.failingSince)}: ${this.lastStorageError?.message ?? ''}`
        : this.reservedUntil <= now
          ? 'the reservation is not ahead of the clock (renewal pending or the clock jumped forward)'
          : undefined;
    return {
      nodeId: this.nodeId,
      worker: { index: this.worker.index, count: this.worker.count },
      stateFile: this.stateFile,
      reservedUntil: this.reservedUntil,
      reservationRemainingMs: this.reservedUntil - now,
      clockLeadMs: Math.max(0, logical - now),
      healthy: reason === undefined,
      reason,
      renewals: this.renewals,
      storageErrors: this.storageErrors,
      lastStorageError: this.lastStorageError,
      firstStart: this.firstStart,
      closed: this.closed,
      generator: this.gen.counters(),
    };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.timer);
    this.timer = undefined;
    await this.writing;
    await this.lock.release();
    this.logger.info({ nodeId: this.nodeId, worker: this.worker.index, reservedUntil: this.reservedUntil }, 'node closed');
  }

  /** Logs each new episode of the clock stepping back (seen by the generator on its calls). */
  private watchClock(): void {
    const { clockRegressions } = this.gen.counters();
    if (clockRegressions === this.clockRegressionsLogged) return;
    this.clockRegressionsLogged = clockRegressions;
    const now = this.clock();
    this.logger.warn(
      { nodeId: this.nodeId, worker: this.worker.index, clockRegressions, leadMs: Math.max(0, (this.gen.lastTimestamp() ?? now) - now), maxLeadMs: this.maxLeadMs },
      'the clock stepped back: issuing on logical time ahead of it, within maxLeadMs',
    );
  }

  /** Starts a durable write of a later reservation when the current one is half used. */
  private maybeRenew(urgent = false): void {
    if (this.closed || this.writing !== undefined) return;
    if (this.failingSince !== undefined && Date.now() < this.retryAt) return;
    const now = this.clock();
    const reference = Math.max(now, this.gen.lastTimestamp() ?? now);
    if (!urgent && this.failingSince === undefined && this.reservedUntil - reference >= this.reservationMs / 2) return;
    // Never reserve past what the lead lets the generator use anyway: a restart then always
    // finds the reservation within its lead, and resumes without waiting.
    const target = Math.max(this.reservedUntil, Math.min(reference + this.reservationMs, now + this.maxLeadMs));
    if (target <= this.reservedUntil) return;
    this.writing = this.persist(target).finally(() => {
      this.writing = undefined;
    });
  }

  private async persist(target: number): Promise<void> {
    const record = encodeRecord(recordFor(this.layout, this.nodeId, this.worker, target, this.clock()));
    try {
      await writeDurably(this.fs, this.stateFile, record);
    } catch (error) {
      this.storageErrors++;
      this.lastStorageError = { code: errorCode(error), message: String((error as Error)?.message ?? error), at: Date.now() };
      const failures = this.failingSince === undefined ? 1 : this.storageErrors;
      this.failingSince ??= Date.now();
      // Back off, but keep retrying often enough to resume soon after storage recovers.
      const delay = Math.min(RETRY_MIN_MS * 2 ** Math.min(failures, 10), Math.max(RETRY_MIN_MS, this.reservationMs / 4));
      this.retryAt = Date.now() + delay;
      this.logger.error(
        { nodeId: this.nodeId, worker: this.worker.index, code: this.lastStorageError.code, reservedUntil: this.reservedUntil, retryInMs: delay },
        `cannot extend the durable reservation (${this.lastStorageError.message}); issuing only up to ${iso(this.reservedUntil)}, then refusing`,
      );
      return;
    }
    if (this.closed && target <= this.reservedUntil) return;
    this.reservedUntil = target;
    this.gen.setLimit(target);
    this.renewals++;
    if (this.failingSince !== undefined) {
      this.logger.warn(
        { nodeId: this.nodeId, worker: this.worker.index, failedForMs: Date.now() - this.failingSince },
        'storage recovered: the durable reservation is being extended again',
      );
      this.failingSince = undefined;
    }
  }
}

function recordFor(layout: Layout, nodeId: number, worker: WorkerStripe, reservedUntil: number, writtenAt: number): StateRecord {
  return {
    timeBits: layout.timeBits,
    nodeBits: layout.nodeBits,
    sequenceBits: layout.sequenceBits,
    tickMs: layout.tickMs,
    epoch: layout.epoch,
    nodeId,
    workerIndex: worker.index,
    workerCount: worker.count,
    reservedUntil,
    writtenAt,
  };
}

function corrupt(path: string, why: string): HailstoneError {
  return new HailstoneError(
    'STATE_CORRUPT',
    `state file ${path} cannot be trusted: ${why}. hailstone will not guess where this node left off. ` +
      'Restore the file, or — only if no other process uses this node id — start with resetState ' +
      '(--reset-state), which treats this as a first start',
  );
}

/** Reads and checks this node's own state file: its record, or undefined when there is none. */
async function readOwnState(fs: StorageFs, path: string, layout: Layout, nodeId: number, worker: WorkerStripe): Promise<StateRecord | undefined> {
  const bytes = await fs.readFile(path);
  if (bytes === undefined) return undefined;
  let record: StateRecord;
  try {
    record = decodeRecord(bytes);
  } catch (error) {
    if (error instanceof RecordError) throw corrupt(path, error.message);
    throw error;
  }
  if (record.nodeId !== nodeId) throw corrupt(path, `it belongs to node ${record.nodeId}, not node ${nodeId}`);
  if (record.workerIndex !== worker.index || record.workerCount !== worker.count) {
    throw corrupt(path, `it belongs to worker ${record.workerIndex} of ${record.workerCount}, not ${worker.index} of ${worker.count}`);
  }
  if (!sameLayout(record, layout)) {
    throw corrupt(path, `it was written with layout ${recordLayoutText(record)}, this node uses ${layout.fingerprint}`);
  }
  return record;
}

/**
 * The latest reservation of this node id under other worker counts. Their stripes overlap
 * ours, so we must start after them — and none of them may still be running.
 */
async function otherConfigurationsFloor(ctx: LockContext, dir: string, nodeId: number, worker: WorkerStripe): Promise<number> {
  let floor = -Infinity;
  for (const name of await ctx.fs.list(dir)) {
    const m = STATE_FILE_PATTERN.exec(name);
    if (m === null || Number(m[1]) !== nodeId || Number(m[3]) === worker.count) continue;
    const path = join(dir, name);
    const holder = await lockHolder(ctx, `${path}.lock`);
    if (holder?.live) {
      throw new HailstoneError(
        'STATE_LOCKED',
        `node ${nodeId} is running as worker ${m[2]} of ${m[3]} in ${dir}: stop it before starting the node with ${worker.count} worker(s)`,
      );
    }
    const bytes = await ctx.fs.readFile(path);
    if (bytes === undefined) continue;
    try {
      floor = Math.max(floor, decodeRecord(bytes).reservedUntil);
    } catch (error) {
      if (!(error instanceof RecordError)) throw error;
      throw corrupt(path, `${error.message} (it is left from running node ${nodeId} with ${m[3]} workers; delete it only if you know no id was issued past now)`);
    }
  }
  return floor;
}

/** Opens a crash-safe node. Resolves once the first reservation is durable. */
export async function openNode(options: NodeOptions): Promise<HailstoneNode> {
  if (options === null || typeof options !== 'object') {
    throw new InvalidArgumentError('options', `must be an object with nodeId and stateDir, got ${describe(options)}`);
  }
  const layout = options.layout ?? DEFAULT_LAYOUT;
  const nodeId = checkInteger('nodeId', options.nodeId, 0, layout.maxNodeId);
  const worker = workerStripe(layout, options.worker);
  if (typeof options.stateDir !== 'string' || options.stateDir === '') {
    throw new InvalidArgumentError('stateDir', `must be a directory path, got ${describe(options.stateDir)}`);
  }
  const maxLeadMs = checkInteger('maxLeadMs', options.maxLeadMs ?? DEFAULT_MAX_LEAD_MS, 0, MAX_LEAD_MS_LIMIT);
  const reservationMs = checkInteger('reservationMs', options.reservationMs ?? Math.min(DEFAULT_RESERVATION_MS, maxLeadMs), 1, MAX_LEAD_MS_LIMIT);
  if (reservationMs > maxLeadMs) {
    throw new InvalidArgumentError(
      'reservationMs',
      `must be at most maxLeadMs (${maxLeadMs}), got ${reservationMs}: a restart must find the reservation within the lead`,
    );
  }
  const skew = checkInteger('clockSkewMs', options.clockSkewMs ?? 0, -MAX_LEAD_MS_LIMIT * 365, MAX_LEAD_MS_LIMIT * 365);
  const maxStartupWaitMs = checkInteger('maxStartupWaitMs', options.maxStartupWaitMs ?? 0, 0, MAX_LEAD_MS_LIMIT);
  const baseClock = options.clock ?? Date.now;
  if (typeof baseClock !== 'function') throw new InvalidArgumentError('clock', `must be a function, got ${describe(baseClock)}`);
  const clock = skew === 0 ? baseClock : () => baseClock() + skew;
  const fs = options.fs ?? realStorage;
  const logger = options.logger ?? stderrLogger;
  const sleep = options.sleep ?? realSleep;
  const ctx: LockContext = { fs, processes: options.processes ?? realProcesses, sleep, wallClock: Date.now };

  const dir = options.stateDir;
  const stateFile = join(dir, stateFileName(nodeId, worker));
  const what = `node ${nodeId} (worker ${worker.index} of ${worker.count}) in ${dir}`;
  const gen = createGenerator({ nodeId, backend: options.backend, layout, worker, clock, maxLeadMs, limit: -Infinity });

  await fs.mkdir(dir);
  const lock = await acquireLock(ctx, `${stateFile}.lock`, what);
  try {
    // Temp files left by a crash mid-write are never renamed: remove them.
    const prefix = `${stateFileName(nodeId, worker)}.`;
    for (const name of await fs.list(dir)) {
      if (name.startsWith(prefix) && name.endsWith('.tmp')) await fs.remove(join(dir, name));
    }

    let own: StateRecord | undefined;
    try {
      own = await readOwnState(fs, stateFile, layout, nodeId, worker);
    } catch (error) {
      if (!(error instanceof HailstoneError) || !options.resetState) throw error;
      logger.warn({ nodeId, stateFile, reason: error.message }, 'resetState: ignoring the state file; starting as a first start');
    }
    const firstStart = own === undefined;
    const now = clock();
    let floor = Math.max(own?.reservedUntil ?? -Infinity, await otherConfigurationsFloor(ctx, dir, nodeId, worker));

    // Without state, a previous run may have issued ids up to its clock plus its lead: start
    // after that, and wait until the clock has passed it (one lead window).
    if (firstStart) floor = Math.max(floor, now + maxLeadMs);
    const waitUntil = firstStart ? floor : floor - maxLeadMs;
    const wait = waitUntil - now;
    if (wait > 0) {
      if (!firstStart && wait > maxStartupWaitMs) {
        throw new HailstoneError(
          'CLOCK_FAR_BEHIND',
          `the clock (${iso(now)}) is ${floor - now} ms behind the reservation in ${stateFile} (${iso(floor)}): ` +
            `ids up to then may already have been issued, and the node may only run ${maxLeadMs} ms ahead of its clock. ` +
            'Fix the system clock (check NTP/chrony), or let the node wait for it with maxStartupWaitMs ' +
            `(--max-startup-wait-ms) of at least ${Math.ceil(wait)}`,
          { retryAfterMs: Math.ceil(wait) },
        );
      }
      logger.warn(
        { nodeId, worker: worker.index, waitMs: Math.ceil(wait), resumeAfter: iso(floor), firstStart },
        firstStart
          ? `no state file: first start of ${what}; waiting ${Math.ceil(wait)} ms before issuing, in case an earlier run's state was lost`
          : `the clock is ${floor - now} ms behind the stored reservation; waiting ${Math.ceil(wait)} ms for it`,
      );
      for (let left = wait; left > 0; left = waitUntil - clock()) await sleep(Math.min(left, 1000));
    }

    gen.resumeAfter(floor);
    const start = clock();
    const reservedUntil = Math.max(floor, Math.min(Math.max(start, floor) + reservationMs, start + maxLeadMs));
    await writeDurably(fs, stateFile, encodeRecord(recordFor(layout, nodeId, worker, reservedUntil, start)));
    gen.setLimit(reservedUntil);
    logger.info(
      { nodeId, worker: worker.index, workers: worker.count, layout: layout.fingerprint, stateFile, firstStart, resumedAfter: iso(floor), clockBehindMs: Math.max(0, floor - start) },
      'node started',
    );
    return new Node({ gen, clock, fs, logger, lock, stateFile, reservationMs, reservedUntil, firstStart });
  } catch (error) {
    await lock.release().catch(() => undefined);
    throw error;
  }
}
