// A crash-safe node: a generator bounded by a durable time reservation.
//
// The node never issues an id whose timestamp is past R, the reservation last made
// durable in its store (a state file, or etcd in fleet mode). R is extended in the
// background, well before logical time reaches it, and only after the store confirmed it
// — durable, and still this node's. After a crash, a restart or a clock step, the node
// resumes strictly after the R it finds. So no id is ever reissued.
//
// When the store proves the node id is no longer this process's (its lock file was
// removed, its state dir replaced, its claim taken), the node stops issuing at once and
// for good: it never takes the node id back by itself.

import { MAX_CLOCK_MS, STATUS_CLOCK_BEHIND, STATUS_CLOSED, STATUS_LIMIT_REACHED } from '../core/constants.js';
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
import { LatencyHistogram, type LatencySnapshot } from '../latency.js';
import { FailureEpisode } from '../log-episode.js';
import { RenewalPlanner } from './renewal.js';
import { FileStore, stateFileName } from './file-store.js';
import { type KernelLocks, kernelLockAvailability } from './kernel-lock.js';
import { type ProcessProbe, realProcesses } from './lock.js';
import { type StorageFs, realStorage } from './storage.js';
import { OwnershipLostError, type ReservationStore } from './store.js';

export { stateFileName };
import { type NodeLogger, stderrLogger } from '../logger.js';
export { type NodeLogger, stderrLogger };

/** What a starting node waits for before it may issue, and until when (ms on the wall clock). */
export interface StartupWait {
  reason: 'first start' | 'clock behind';
  untilMs: number;
  waitMs: number;
}

export interface NodeOptions {
  nodeId: number;
  /** Directory for the state and lock files. Local, durable storage; created if missing. */
  stateDir: string;
  backend?: Backend;
  layout?: Layout;
  worker?: WorkerOptions;
  /** Default 2000. */
  maxLeadMs?: number;
  /** How far ahead of the clock each durable reservation reaches. 1..maxLeadMs. Default 1000 (or maxLeadMs if smaller). */
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
  /** Told when startup must wait before the first id (a first start, a clock behind the state). */
  onStartupWait?: (wait: StartupWait) => void;
  /** File-system access (tests inject faults here). Default: the real file system. */
  fs?: StorageFs;
  /** Who this process is and whether a lock's owner still runs. Default: the real process table. */
  processes?: ProcessProbe;
  /**
   * The kernel's flock on lock files, or false for the portable lock alone. Default: flock
   * where the native lock addon loads and the file system is the real one.
   */
  kernelLocks?: KernelLocks | false;
  /** Waits `ms` of the clock's time. Default: a timer. */
  sleep?: (ms: number) => Promise<void>;
}

/**
 * Why a node refused. `reservation` means nothing was failing and a renewal was still late:
 * a healthy node should never count one. `slow_storage`: the store's writes (with the event
 * loop's lag) take longer than the lead can cover, so renewals cannot keep ahead however
 * early they start — raise maxLeadMs or use faster storage. `storage`/`coordinator`: the
 * store's writes are failing. `ownership`: the node lost its node id. `clock_behind`: logical time would run
 * too far ahead of the clock (a clock step back, or demand beyond the layout's rate).
 * `clock`: the clock is unusable (before the epoch, past the layout, invalid). `closed`.
 */
export type RefusalReason = 'reservation' | 'slow_storage' | 'storage' | 'coordinator' | 'ownership' | 'clock_behind' | 'clock' | 'closed';

export interface NodeStatus {
  nodeId: number;
  worker: { index: number; count: number };
  /** Where the reservation is kept ("state file …", "etcd key …"). */
  store: string;
  /** The state file, when the reservation is kept in one. */
  stateFile: string | undefined;
  /** The durable reservation: no id has a later timestamp. */
  reservedUntil: number;
  /** reservedUntil minus the clock, ms. */
  reservationRemainingMs: number;
  /** How far logical time is ahead of the clock, ms (0 when it is not). */
  clockLeadMs: number;
  /**
   * The node can issue an id now, its store works, and its reservation is ahead of the
   * clock. False while it refuses (clock far behind, store failing, ownership lost, closed).
   */
  healthy: boolean;
  /** Why not healthy. */
  reason: string | undefined;
  /** When not healthy and waiting helps: how long until it can issue again, ms. */
  retryAfterMs: number | undefined;
  renewals: number;
  storageErrors: number;
  lastStorageError: { code: string; message: string; at: number } | undefined;
  /** Why the node no longer owns its node id (it issues nothing more), or undefined. */
  ownershipLost: string | undefined;
  /** The node started without a state file (or with resetState). */
  firstStart: boolean;
  closed: boolean;
  /** Clock regressions, sequence exhaustions and refusals seen by the generator. */
  generator: GeneratorCounters;
  /** Refusals by reason since the node opened (tryFill and nextId). */
  refusals: Record<RefusalReason, number>;
  /** How long the reservation writes took (renewals), as a histogram. */
  reservationWrites: LatencySnapshot;
  /** How much of the reservation must be left when a renewal starts, from the writes seen, ms. */
  renewalMarginMs: number;
}

export interface HailstoneNode {
  readonly backend: Backend;
  readonly layout: Layout;
  readonly nodeId: number;
  readonly worker: WorkerStripe;
  readonly maxLeadMs: number;
  /** The state file, when the reservation is kept in one. */
  readonly stateFile: string | undefined;
  nextId(): bigint;
  nextIdString(): string;
  fill(buffer: Uint8Array, offset?: number, count?: number): number;
  /** fill() that reports a refusal as a negative status instead of throwing (see Generator.tryFill). */
  tryFill(buffer: Uint8Array, offset?: number, count?: number): number;
  /** Why tryFill returned `status`, as counted in `status().refusals`. */
  refusalReason(status: number): RefusalReason;
  retryAfterMs(status: number): number | undefined;
  refusalOf(status: number): HailstoneError;
  lastTimestamp(): number | undefined;
  status(): NodeStatus;
  /**
   * Stops issuing at once and for good (status() says why). For a holder that can no
   * longer prove it owns the node id — fleet mode fences a node this way.
   */
  stopIssuing(reason: string): void;
  /** Stops renewing, waits for a write in progress and releases the node id. The state stays valid. */
  close(): Promise<void>;
}

export const DEFAULT_RESERVATION_MS = 1000;

const RETRY_MIN_MS = 20;
/** How often a node proves it still owns its node id between renewals. */
const VERIFY_EVERY_MS = 250;
/** How often a node checks whether its reservation is due for renewal (at most). */
const CHECK_EVERY_MS = 50;
/** Retry-after for a node that lost its node id: waiting does not help, another server should be asked. */
const OWNERSHIP_LOST_RETRY_MS = 60_000;

function realSleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, Math.max(0, ms)));
}

function errorCode(error: unknown): string {
  return (error as NodeJS.ErrnoException | undefined)?.code ?? 'EUNKNOWN';
}

function iso(ms: number): string {
  return Math.abs(ms) <= MAX_CLOCK_MS ? new Date(ms).toISOString() : String(ms);
}

class Node implements HailstoneNode {
  readonly backend: Backend;
  readonly layout: Layout;
  readonly nodeId: number;
  readonly worker: WorkerStripe;
  readonly maxLeadMs: number;
  readonly stateFile: string | undefined;
  private readonly reservationMs: number;
  private readonly gen: Generator;
  private readonly clock: () => number;
  private readonly store: ReservationStore;
  private readonly logger: NodeLogger;
  private readonly firstStart: boolean;
  private reservedUntil: number;
  private writing: Promise<void> | undefined;
  private readonly planner: RenewalPlanner;
  private readonly writeLatency = new LatencyHistogram();
  private readonly refusals: Record<RefusalReason, number> = { reservation: 0, slow_storage: 0, storage: 0, coordinator: 0, ownership: 0, clock_behind: 0, clock: 0, closed: 0 };
  private timer: NodeJS.Timeout | undefined;
  private closed = false;
  private clockRegressionsLogged = 0;
  private tooSlowLogged = false;
  private renewals = 0;
  private storageErrors = 0;
  private failingSince: number | undefined;
  /** How the store names the current failure when it is not the disk's ("coordinator (etcd) unreachable"). */
  private failingKind: string | undefined;
  /** A failing store is logged once per episode, not at every retry. */
  private readonly storageEpisode: FailureEpisode;
  private retryAt = 0;
  private lastStorageError: NodeStatus['lastStorageError'];
  private ownershipLost: string | undefined;
  private lastVerified = Date.now();

  constructor(init: {
    gen: Generator;
    clock: () => number;
    store: ReservationStore;
    stateFile: string | undefined;
    logger: NodeLogger;
    reservationMs: number;
    reservedUntil: number;
    firstStart: boolean;
    /** How long the startup's durable write took, ms: the first measure of the store. */
    firstWriteMs: number;
  }) {
    this.gen = init.gen;
    this.backend = init.gen.backend;
    this.layout = init.gen.layout;
    this.nodeId = init.gen.nodeId;
    this.worker = init.gen.worker;
    this.maxLeadMs = init.gen.maxLeadMs;
    this.clock = init.clock;
    this.store = init.store;
    this.stateFile = init.stateFile;
    this.logger = init.logger;
    this.reservationMs = init.reservationMs;
    this.reservedUntil = init.reservedUntil;
    this.firstStart = init.firstStart;
    this.storageEpisode = new FailureEpisode(this.logger, { what: 'durable reservation writes', fields: { nodeId: this.nodeId, worker: this.worker.index } });
    // Checked often, so that a renewal starts within a few ms of being due (polling is cheap,
    // a renewal that starts a tick late is not: see renewal.ts) and a lost lock is noticed
    // within VERIFY_EVERY_MS even when renewals are seconds apart. The timer's lateness is
    // the event loop's lag, which the renewal margin allows for.
    const period = Math.max(5, Math.min(CHECK_EVERY_MS, Math.floor(this.reservationMs / 8)));
    this.planner = new RenewalPlanner(this.reservationMs, this.maxLeadMs, period, this.store.renewalMarginMs ?? 0);
    this.planner.noteWrite(init.firstWriteMs);
    let expected = Date.now() + period;
    this.timer = setInterval(() => {
      const at = Date.now();
      this.planner.noteTimerLag(at - expected);
      expected = at + period;
      this.maybeRenew();
      this.maybeVerify();
      this.watchClock();
    }, period);
    this.timer.unref();
  }

  nextId(): bigint {
    // A node that lost its node id says so even once closed: that, not the close, is what
    // the caller must act on (a fleet server closes a fenced node while it claims again).
    if (this.ownershipLost !== undefined || this.closed) {
      const status = this.ownershipLost !== undefined ? STATUS_LIMIT_REACHED : STATUS_CLOSED;
      this.refusals[this.refusalReason(status)]++;
      throw this.refusalOf(status);
    }
    try {
      return this.gen.nextId();
    } catch (error) {
      if (!(error instanceof HailstoneError)) throw error;
      if (error.code !== 'LIMIT_REACHED') {
        this.refusals[error.code === 'CLOCK_BEHIND' ? 'clock_behind' : 'clock']++;
        throw error;
      }
      this.refusals[this.refusalReason(STATUS_LIMIT_REACHED)]++;
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
    const written = this.ownershipLost !== undefined ? STATUS_LIMIT_REACHED : this.closed ? STATUS_CLOSED : this.gen.tryFill(buffer, offset, count);
    if (written >= 0) return written;
    this.refusals[this.refusalReason(written)]++;
    // At the reservation: start extending it now rather than at the next timer tick.
    if (written === STATUS_LIMIT_REACHED) this.maybeRenew(true);
    return written;
  }

  refusalReason(status: number): RefusalReason {
    switch (status) {
      case STATUS_CLOSED:
        return this.ownershipLost !== undefined ? 'ownership' : 'closed';
      case STATUS_LIMIT_REACHED:
        if (this.ownershipLost !== undefined) return 'ownership';
        if (this.failingSince !== undefined) return this.failingKind?.startsWith('coordinator') === true ? 'coordinator' : 'storage';
        // Nothing failing: either the writes are too slow for the lead (no rule can keep up),
        // or a renewal was late, which is never expected.
        return this.planner.tooSlowForLead ? 'slow_storage' : 'reservation';
      case STATUS_CLOCK_BEHIND:
        return 'clock_behind';
      default:
        return 'clock';
    }
  }

  retryAfterMs(status: number): number | undefined {
    if (status === STATUS_CLOSED) return undefined;
    if (status !== STATUS_LIMIT_REACHED) return this.gen.retryAfterMs(status);
    if (this.ownershipLost !== undefined) return this.store.lostRetryAfterMs ?? OWNERSHIP_LOST_RETRY_MS;
    return this.failingSince !== undefined ? Math.max(RETRY_MIN_MS, this.retryAt - Date.now()) : RETRY_MIN_MS;
  }

  refusalOf(status: number): HailstoneError {
    if (status === STATUS_CLOSED) return new HailstoneError('CLOSED', `node ${this.nodeId} is closed; open it again with openNode`);
    if (status !== STATUS_LIMIT_REACHED) return this.gen.refusalOf(status);
    const retryAfterMs = this.retryAfterMs(status)!;
    if (this.ownershipLost !== undefined) {
      return new HailstoneError('OWNERSHIP_LOST', `node ${this.nodeId} ${this.ownershipLostText()}`, { retryAfterMs });
    }
    const why =
      this.failingSince !== undefined
        ? `the reservation cannot be extended: ${this.failingKind ?? 'storage is failing'} (${this.lastStorageError?.message ?? 'unknown error'})`
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
    let reason: string | undefined;
    let retryAfterMs: number | undefined;
    if (this.ownershipLost !== undefined) {
      reason = this.ownershipLostText();
      retryAfterMs = this.store.lostRetryAfterMs ?? OWNERSHIP_LOST_RETRY_MS;
    } else if (this.closed) reason = 'closed';
    else if (this.failingSince !== undefined) {
      reason = `${this.failingKind ?? 'storage errors'} since ${iso(this.failingSince)}: ${this.lastStorageError?.message ?? ''}`;
      retryAfterMs = Math.max(RETRY_MIN_MS, this.retryAt - Date.now());
    } else {
      // Could it issue right now? (A clock stepped back past the lead refuses every request.)
      const peek = this.gen.peek();
      if (peek.status !== 0 && peek.status !== STATUS_LIMIT_REACHED) {
        reason = `cannot issue now: ${this.gen.refusalOf(peek.status).message}`;
        retryAfterMs = peek.retryAfterMs;
      } else if (this.reservedUntil <= now) {
        reason = 'the reservation is not ahead of the clock (renewal pending or the clock jumped forward)';
        retryAfterMs = RETRY_MIN_MS;
      }
    }
    return {
      nodeId: this.nodeId,
      worker: { index: this.worker.index, count: this.worker.count },
      store: this.store.where,
      stateFile: this.stateFile,
      reservedUntil: this.reservedUntil,
      reservationRemainingMs: this.reservedUntil - now,
      clockLeadMs: Math.max(0, logical - now),
      healthy: reason === undefined,
      reason,
      retryAfterMs,
      renewals: this.renewals,
      storageErrors: this.storageErrors,
      lastStorageError: this.lastStorageError,
      ownershipLost: this.ownershipLost,
      firstStart: this.firstStart,
      closed: this.closed,
      generator: this.gen.counters(),
      refusals: { ...this.refusals },
      reservationWrites: this.writeLatency.snapshot(),
      renewalMarginMs: Math.round(this.planner.marginMs()),
    };
  }

  stopIssuing(reason: string): void {
    if (this.ownershipLost !== undefined || this.closed) return;
    this.ownershipLost = reason;
    this.storageEpisode.abandoned('the node stopped issuing');
    this.logger.error(
      { nodeId: this.nodeId, worker: this.worker.index, reason, store: this.store.where, lastIssued: iso(this.gen.lastTimestamp() ?? -1) },
      `node ${this.nodeId} ${this.ownershipLostText()}`,
    );
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.timer);
    this.timer = undefined;
    await this.writing;
    this.storageEpisode.abandoned('the node closed');
    try {
      await this.store.close();
    } catch (error) {
      // Read-only or vanished storage at shutdown: the lock stays behind, and the next start
      // takes it over as the lock of a dead process.
      this.logger.warn(
        { nodeId: this.nodeId, worker: this.worker.index, code: errorCode(error) },
        `could not release ${this.store.where}'s lock (${(error as Error)?.message ?? error}); the next start takes it over`,
      );
    }
    this.logger.info({ nodeId: this.nodeId, worker: this.worker.index, reservedUntil: this.reservedUntil }, 'node closed');
  }

  private ownershipLostText(): string {
    if (this.store.afterLoss !== undefined) return `lost its ${this.store.ownership}: ${this.ownershipLost}. It stopped issuing ids; ${this.store.afterLoss}`;
    return (
      `lost its ${this.store.ownership}: ${this.ownershipLost}. It stopped issuing ids and will not take the node id back by itself: ` +
      `make sure no other process runs node ${this.nodeId} (worker ${this.worker.index} of ${this.worker.count}) on ${this.store.where}, ` +
      'find what removed the lock, then restart this process'
    );
  }

  /** Says once, and again when it passes, that the store is too slow for the lead. */
  private watchWriteSpeed(): void {
    const slow = this.planner.tooSlowForLead;
    if (slow === this.tooSlowLogged) return;
    this.tooSlowLogged = slow;
    const fields = { nodeId: this.nodeId, worker: this.worker.index, slowestWriteMs: this.planner.slowestWriteMs, neededMarginMs: Math.round(this.planner.wantedMarginMs()), maxLeadMs: this.maxLeadMs };
    if (slow) {
      this.logger.warn(
        fields,
        `reservation writes (slowest recent: ${this.planner.slowestWriteMs} ms) and event-loop lag need ${Math.round(this.planner.wantedMarginMs())} ms of reservation left at each renewal, ` +
          `more than a ${this.maxLeadMs} ms lead allows: expect refusals under load; ${this.store.slowWriteAdvice ?? 'raise maxLeadMs (--max-lead-ms) or put the state on faster storage'}`,
      );
    } else this.logger.info(fields, 'reservation writes fit the lead again');
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

  /** Between renewals: proves ownership every VERIFY_EVERY_MS (the store's cheap check). */
  private maybeVerify(): void {
    if (this.store.verify === undefined || this.closed || this.ownershipLost !== undefined || this.writing !== undefined) return;
    if (Date.now() - this.lastVerified < VERIFY_EVERY_MS) return;
    this.lastVerified = Date.now();
    this.writing = this.store
      .verify()
      .catch((error: unknown) => {
        // Other errors (a disk hiccup) are left to the next renewal, which reports them.
        if (error instanceof OwnershipLostError) this.stopIssuing(error.message);
      })
      .finally(() => {
        this.writing = undefined;
        // A renewal never waits behind a verification for a tick: one that fell due meanwhile starts now.
        this.maybeRenew();
      });
  }

  /** Starts a durable write of a later reservation when the planner says it is due (see renewal.ts). */
  private maybeRenew(urgent = false): void {
    if (this.closed || this.ownershipLost !== undefined || this.writing !== undefined) return;
    if (this.failingSince !== undefined && Date.now() < this.retryAt) return;
    const plan = this.planner.plan(this.clock(), this.gen.lastTimestamp(), this.reservedUntil);
    if (!plan.due && !urgent && this.failingSince === undefined) return;
    if (plan.target <= this.reservedUntil) return;
    // The store proves ownership before it writes: this counts as the periodic proof.
    this.lastVerified = Date.now();
    const started = Date.now();
    this.writing = this.persist(plan.target).finally(() => {
      const ms = Date.now() - started;
      this.planner.noteWrite(ms);
      this.writeLatency.observe(ms / 1000);
      this.watchWriteSpeed();
      this.writing = undefined;
    });
  }

  private async persist(target: number): Promise<void> {
    try {
      await this.store.save(target, this.clock());
    } catch (error) {
      if (error instanceof OwnershipLostError) {
        this.stopIssuing(error.message);
        return;
      }
      this.storageErrors++;
      this.lastStorageError = { code: errorCode(error), message: String((error as Error)?.message ?? error), at: Date.now() };
      this.failingKind = this.store.describeFailure?.(error);
      // This failure's number within the episode.
      const failures = this.storageEpisode.count + 1;
      this.failingSince ??= Date.now();
      // Back off, but keep retrying often enough to resume soon after storage recovers.
      const delay = Math.min(RETRY_MIN_MS * 2 ** Math.min(failures, 10), Math.max(RETRY_MIN_MS, this.reservationMs / 4));
      this.retryAt = Date.now() + delay;
      this.storageEpisode.failed(
        `cannot extend the durable reservation${this.failingKind === undefined ? '' : `: ${this.failingKind}`} (${this.lastStorageError.message}); ` +
          `issuing only up to ${iso(this.reservedUntil)}, then refusing`,
        { code: this.lastStorageError.code, reservedUntil: this.reservedUntil, retryInMs: delay },
      );
      return;
    }
    if (this.closed && target <= this.reservedUntil) return;
    this.reservedUntil = target;
    this.gen.setLimit(target);
    this.renewals++;
    if (this.failingSince !== undefined) {
      this.storageEpisode.recovered();
      this.failingSince = undefined;
      this.failingKind = undefined;
    }
  }
}

/** Options every store shares: what the node is and how it keeps time. */
export type NodeRules = Omit<NodeOptions, 'stateDir' | 'fs' | 'processes' | 'kernelLocks' | 'resetState'>;

export interface CheckedRules {
  layout: Layout;
  nodeId: number;
  worker: WorkerStripe;
  maxLeadMs: number;
  reservationMs: number;
  maxStartupWaitMs: number;
  clock: () => number;
  logger: NodeLogger;
  sleep: (ms: number) => Promise<void>;
}

/** Checks the options every node has; throws InvalidArgumentError naming the bad one. */
export function checkNodeRules(options: NodeRules): CheckedRules {
  if (options === null || typeof options !== 'object') {
    throw new InvalidArgumentError('options', `must be an object with nodeId and stateDir, got ${describe(options)}`);
  }
  const layout = options.layout ?? DEFAULT_LAYOUT;
  const nodeId = checkInteger('nodeId', options.nodeId, 0, layout.maxNodeId);
  const worker = workerStripe(layout, options.worker);
  const { maxLeadMs, reservationMs } = checkReservationMs(options.maxLeadMs, options.reservationMs);
  const skew = checkInteger('clockSkewMs', options.clockSkewMs ?? 0, -MAX_LEAD_MS_LIMIT * 365, MAX_LEAD_MS_LIMIT * 365);
  const maxStartupWaitMs = checkInteger('maxStartupWaitMs', options.maxStartupWaitMs ?? 0, 0, MAX_LEAD_MS_LIMIT);
  const baseClock = options.clock ?? Date.now;
  if (typeof baseClock !== 'function') throw new InvalidArgumentError('clock', `must be a function, got ${describe(baseClock)}`);
  const clock = skew === 0 ? baseClock : () => baseClock() + skew;
  return { layout, nodeId, worker, maxLeadMs, reservationMs, maxStartupWaitMs, clock, logger: options.logger ?? stderrLogger, sleep: options.sleep ?? realSleep };
}

/**
 * The shortest reservation (and so lead) a node accepts. A node renews when half of it is
 * used, and each renewal is a durable write (an fsync, or an etcd transaction): shorter
 * windows leave the write no time, and the node refuses more than it issues.
 */
export const MIN_RESERVATION_MS = 50;

/** maxLeadMs and reservationMs of a node, defaulted and checked together. */
export function checkReservationMs(maxLeadMsOption: number | undefined, reservationMsOption: number | undefined): { maxLeadMs: number; reservationMs: number } {
  const maxLeadMs = checkInteger('maxLeadMs', maxLeadMsOption ?? DEFAULT_MAX_LEAD_MS, MIN_RESERVATION_MS, MAX_LEAD_MS_LIMIT);
  const reservationMs = checkInteger('reservationMs', reservationMsOption ?? Math.min(DEFAULT_RESERVATION_MS, maxLeadMs), MIN_RESERVATION_MS, MAX_LEAD_MS_LIMIT);
  if (reservationMs > maxLeadMs) {
    throw new InvalidArgumentError(
      'reservationMs',
      `must be at most maxLeadMs (${maxLeadMs}), got ${reservationMs}: a restart must find the reservation within the lead`,
    );
  }
  return { maxLeadMs, reservationMs };
}

/** Opens a crash-safe node with its reservation in a state directory. Resolves once the first reservation is durable. */
export async function openNode(options: NodeOptions): Promise<HailstoneNode> {
  const rules = checkNodeRules(options);
  if (typeof options.stateDir !== 'string' || options.stateDir === '') {
    throw new InvalidArgumentError('stateDir', `must be a directory path, got ${describe(options.stateDir)}`);
  }
  const store = fileStoreOf(options, rules);
  return startNode(store, options, rules, store.stateFile);
}

/** The state-dir store of a node (also the extra floor of a fleet node that has a state dir). */
export function fileStoreOf(options: NodeOptions, rules: CheckedRules): FileStore {
  const fs = options.fs ?? realStorage;
  const kernel =
    options.kernelLocks === false
      ? undefined
      : (options.kernelLocks ?? (fs === realStorage ? kernelLockOrUndefined() : undefined));
  return new FileStore({
    dir: options.stateDir,
    layout: rules.layout,
    nodeId: rules.nodeId,
    worker: rules.worker,
    resetState: options.resetState ?? false,
    onReset: (reason) => rules.logger.warn({ nodeId: rules.nodeId, reason }, 'resetState: ignoring the state file; starting as a first start'),
    lockContext: { fs, processes: options.processes ?? realProcesses, kernel, sleep: rules.sleep, wallClock: Date.now },
  });
}

function kernelLockOrUndefined(): KernelLocks | undefined {
  const availability = kernelLockAvailability();
  return availability.available ? availability.locks : undefined;
}

/**
 * Opens a node over any reservation store: takes ownership, applies the startup rules (a
 * first start waits one lead window; a clock further behind the stored reservation than
 * the lead refuses or waits), stores the first reservation and starts renewing.
 */
export async function startNode(store: ReservationStore, options: NodeRules, rules = checkNodeRules(options), stateFile?: string): Promise<HailstoneNode> {
  const { layout, nodeId, worker, maxLeadMs, reservationMs, maxStartupWaitMs, clock, logger, sleep } = rules;
  const what = `node ${nodeId} (worker ${worker.index} of ${worker.count}) on ${store.where}`;
  const gen = createGenerator({ nodeId, backend: options.backend, layout, worker, clock, maxLeadMs, limit: -Infinity });

  const stored = await store.open();
  try {
    const firstStart = stored.firstStart;
    const now = clock();
    let floor = stored.floor ?? -Infinity;
    // Without state, a previous run may have issued ids up to its clock plus its lead: start
    // after that, and wait until the clock has passed it (one lead window).
    if (firstStart) floor = Math.max(floor, now + maxLeadMs);
    const waitUntil = firstStart ? floor : floor - maxLeadMs;
    const wait = waitUntil - now;
    if (wait > 0) {
      if (!firstStart && wait > maxStartupWaitMs) {
        const waitAdvice = `let the node wait for it with maxStartupWaitMs (--max-startup-wait-ms) of at least ${Math.ceil(wait)}`;
        throw new HailstoneError(
          'CLOCK_FAR_BEHIND',
          store.farAheadAdvice !== undefined
            ? `node ${nodeId}'s reservation in ${store.where} (${iso(floor)}) lies ${floor - now} ms past this clock (${iso(now)}): ` +
                `it was set by an instance whose clock ran at least ${Math.max(0, Math.floor((floor - now - maxLeadMs) / 1000))} s ahead of this one, and ids up to then may have been issued. ` +
                `${store.farAheadAdvice}; or ${waitAdvice}`
            : `the clock (${iso(now)}) is ${floor - now} ms behind the reservation in ${store.where} (${iso(floor)}): ` +
                `ids up to then may already have been issued, and the node may only run ${maxLeadMs} ms ahead of its clock. ` +
                `Fix the system clock (check NTP/chrony), or ${waitAdvice}`,
          { retryAfterMs: Math.ceil(wait) },
        );
      }
      logger.warn(
        { nodeId, worker: worker.index, waitMs: Math.ceil(wait), resumeAfter: iso(floor), firstStart },
        firstStart
          ? `no state: first start of ${what}; waiting ${Math.ceil(wait)} ms before issuing, in case an earlier run's state was lost`
          : `the clock is ${floor - now} ms behind the stored reservation; waiting ${Math.ceil(wait)} ms for it`,
      );
      options.onStartupWait?.({ reason: firstStart ? 'first start' : 'clock behind', waitMs: Math.ceil(wait), untilMs: Date.now() + Math.ceil(wait) });
      for (let left = wait; left > 0; left = waitUntil - clock()) await sleep(Math.min(left, 1000));
    }

    gen.resumeAfter(floor);
    const start = clock();
    const reservedUntil = Math.max(floor, Math.min(Math.max(start, floor) + reservationMs, start + maxLeadMs));
    const writeStarted = Date.now();
    try {
      await store.save(reservedUntil, start);
    } catch (error) {
      if (!(error instanceof OwnershipLostError)) throw error;
      throw new HailstoneError('OWNERSHIP_LOST', `${what} lost its ${store.ownership} while starting: ${error.message}; it issued nothing. Find out why, then start again`);
    }
    gen.setLimit(reservedUntil);
    const firstWriteMs = Date.now() - writeStarted;
    logger.info(
      { nodeId, worker: worker.index, workers: worker.count, layout: layout.fingerprint, store: store.where, lock: store.ownership, firstStart, resumedAfter: iso(floor), clockBehindMs: Math.max(0, floor - start) },
      'node started',
    );
    return new Node({ gen, clock, store, stateFile, logger, reservationMs, reservedUntil, firstStart, firstWriteMs });
  } catch (error) {
    await store.close().catch(() => undefined);
    throw error;
  }
}
