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
//
// Its condition is one state value (NodeState); its periodic work is tick(), which a timer
// calls (the real one, or a test's); every reading of time goes through the clocks it was
// given. Options and their checks are in options.ts, the startup rules in startup.ts, the
// state-directory wiring in open.ts.

import { MAX_CLOCK_MS, STATUS_CLOCK_BEHIND, STATUS_CLOSED, STATUS_LIMIT_REACHED } from '../core/constants.js';
import { HailstoneError } from '../errors.js';
import type { Backend, Generator, GeneratorCounters } from '../generator.js';
import type { Layout, WorkerStripe } from '../layout.js';
import { LatencyHistogram, type LatencySnapshot } from '../latency.js';
import { FailureEpisode } from '../log-episode.js';
import type { NodeLogger } from '../logger.js';
import type { CheckedRules } from './options.js';
import { RenewalPlanner } from './renewal.js';
import { OwnershipLostError, type ReservationStore } from './store.js';

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

const RETRY_MIN_MS = 20;
/** How often a node proves it still owns its node id between renewals. */
const VERIFY_EVERY_MS = 250;
/** How often a node checks whether its reservation is due for renewal (at most). */
const CHECK_EVERY_MS = 50;
/** Retry-after for a node that lost its node id: waiting does not help, another server should be asked. */
const OWNERSHIP_LOST_RETRY_MS = 60_000;

function errorCode(error: unknown): string {
  return (error as NodeJS.ErrnoException | undefined)?.code ?? 'EUNKNOWN';
}

/** A time for messages: ISO 8601 where it is one, the number otherwise. */
export function iso(ms: number): string {
  return Math.abs(ms) <= MAX_CLOCK_MS ? new Date(ms).toISOString() : String(ms);
}

type StorageError = NonNullable<NodeStatus['lastStorageError']>;

/**
 * What a node is doing. Issuing: within its reservation, renewing it ahead of time.
 * Storage failing: renewals fail and are retried from `retryAt`; it issues up to the old
 * reservation, then refuses. Ownership lost: the store disproved ownership; it issues
 * nothing more, ever. Closed: by its holder — and if it had lost ownership first, it keeps
 * saying so, since that, not the close, is what a caller must act on.
 */
export type NodeState =
  | { kind: 'issuing' }
  | { kind: 'storage-failing'; since: number; retryAt: number; lastError: StorageError; failure: string | undefined }
  | { kind: 'ownership-lost'; reason: string }
  | { kind: 'closed'; ownershipLost: string | undefined };

export class Node implements HailstoneNode {
  readonly backend: Backend;
  readonly layout: Layout;
  readonly nodeId: number;
  readonly worker: WorkerStripe;
  readonly maxLeadMs: number;
  readonly stateFile: string | undefined;
  private state: NodeState = { kind: 'issuing' };
  private readonly reservationMs: number;
  private readonly gen: Generator;
  /** The id clock (may be skewed); wallClock measures real time. */
  private readonly clock: () => number;
  private readonly wallClock: () => number;
  private readonly store: ReservationStore;
  private readonly logger: NodeLogger;
  private readonly firstStart: boolean;
  private reservedUntil: number;
  /** The store's save or verify in flight: one at a time. */
  private writing: Promise<void> | undefined;
  private readonly planner: RenewalPlanner;
  private readonly writeLatency = new LatencyHistogram();
  private readonly refusals: Record<RefusalReason, number> = { reservation: 0, slow_storage: 0, storage: 0, coordinator: 0, ownership: 0, clock_behind: 0, clock: 0, closed: 0 };
  private readonly timer: { cancel(): void };
  private readonly period: number;
  /** When the timer's next tick is due (wall clock): how late it comes is the event loop's lag. */
  private nextTickDue: number;
  private clockRegressionsLogged = 0;
  private tooSlowLogged = false;
  private renewals = 0;
  private storageErrors = 0;
  /** A failing store is logged once per episode, not at every retry. */
  private readonly storageEpisode: FailureEpisode;
  /** The last failed save, kept after the store recovers (for status()). */
  private lastStorageError: StorageError | undefined;
  private lastVerified: number;

  constructor(init: {
    gen: Generator;
    rules: CheckedRules;
    store: ReservationStore;
    stateFile: string | undefined;
    reservedUntil: number;
    firstStart: boolean;
    /** How long the startup's durable write took, ms: the first measure of the store. */
    firstWriteMs: number;
  }) {
    const { gen, rules } = init;
    this.gen = gen;
    this.backend = gen.backend;
    this.layout = gen.layout;
    this.nodeId = gen.nodeId;
    this.worker = gen.worker;
    this.maxLeadMs = gen.maxLeadMs;
    this.clock = rules.clock;
    this.wallClock = rules.wallClock;
    this.store = init.store;
    this.stateFile = init.stateFile;
    this.logger = rules.logger;
    this.reservationMs = rules.reservationMs;
    this.reservedUntil = init.reservedUntil;
    this.firstStart = init.firstStart;
    this.lastVerified = this.wallClock();
    this.storageEpisode = new FailureEpisode(this.logger, { what: 'durable reservation writes', fields: { nodeId: this.nodeId, worker: this.worker.index } });
    // Checked often, so that a renewal starts within a few ms of being due (polling is cheap,
    // a renewal that starts a tick late is not: see renewal.ts) and a lost lock is noticed
    // within VERIFY_EVERY_MS even when renewals are seconds apart. The timer's lateness is
    // the event loop's lag, which the renewal margin allows for.
    this.period = Math.max(5, Math.min(CHECK_EVERY_MS, Math.floor(this.reservationMs / 8)));
    this.planner = new RenewalPlanner(this.reservationMs, this.maxLeadMs, this.period, this.store.renewalMarginMs ?? 0);
    this.planner.noteWrite(init.firstWriteMs);
    this.nextTickDue = this.wallClock() + this.period;
    this.timer = rules.timer.every(this.period, () => this.tick());
  }

  /** The periodic work: renew when due, prove ownership between renewals, log clock steps. */
  tick(): void {
    const at = this.wallClock();
    this.planner.noteTimerLag(at - this.nextTickDue);
    this.nextTickDue = at + this.period;
    this.maybeRenew();
    this.maybeVerify();
    this.watchClock();
  }

  /** The status a stopped node answers with: ownership lost, or closed; undefined while it may issue. */
  private stoppedStatus(): number | undefined {
    switch (this.state.kind) {
      case 'ownership-lost':
        return STATUS_LIMIT_REACHED;
      case 'closed':
        return this.state.ownershipLost !== undefined ? STATUS_LIMIT_REACHED : STATUS_CLOSED;
      default:
        return undefined;
    }
  }

  /** Why ownership was lost, in whichever state says so. */
  private lostOwnership(): string | undefined {
    const s = this.state;
    return s.kind === 'ownership-lost' ? s.reason : s.kind === 'closed' ? s.ownershipLost : undefined;
  }

  nextId(): bigint {
    const stopped = this.stoppedStatus();
    if (stopped !== undefined) {
      this.refusals[this.refusalReason(stopped)]++;
      throw this.refusalOf(stopped);
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
    const written = this.stoppedStatus() ?? this.gen.tryFill(buffer, offset, count);
    if (written >= 0) return written;
    this.refusals[this.refusalReason(written)]++;
    // At the reservation: start extending it now rather than at the next timer tick.
    if (written === STATUS_LIMIT_REACHED) this.maybeRenew(true);
    return written;
  }

  refusalReason(status: number): RefusalReason {
    if (status === STATUS_CLOCK_BEHIND) return 'clock_behind';
    if (status !== STATUS_CLOSED && status !== STATUS_LIMIT_REACHED) return 'clock';
    const s = this.state;
    switch (s.kind) {
      case 'ownership-lost':
        return 'ownership';
      case 'closed':
        return s.ownershipLost !== undefined ? 'ownership' : 'closed';
      case 'storage-failing':
        return s.failure?.startsWith('coordinator') === true ? 'coordinator' : 'storage';
      case 'issuing':
        // Nothing failing: either the writes are too slow for the lead (no rule can keep up),
        // or a renewal was late, which is never expected.
        return status === STATUS_CLOSED ? 'closed' : this.planner.tooSlowForLead ? 'slow_storage' : 'reservation';
    }
  }

  retryAfterMs(status: number): number | undefined {
    if (status === STATUS_CLOSED) return undefined;
    if (status !== STATUS_LIMIT_REACHED) return this.gen.retryAfterMs(status);
    const s = this.state;
    switch (s.kind) {
      case 'ownership-lost':
        return this.store.lostRetryAfterMs ?? OWNERSHIP_LOST_RETRY_MS;
      case 'closed':
        return s.ownershipLost !== undefined ? (this.store.lostRetryAfterMs ?? OWNERSHIP_LOST_RETRY_MS) : RETRY_MIN_MS;
      case 'storage-failing':
        return Math.max(RETRY_MIN_MS, s.retryAt - this.wallClock());
      case 'issuing':
        return RETRY_MIN_MS;
    }
  }

  refusalOf(status: number): HailstoneError {
    if (status === STATUS_CLOSED) return new HailstoneError('CLOSED', `node ${this.nodeId} is closed; open it again with openNode`);
    if (status !== STATUS_LIMIT_REACHED) return this.gen.refusalOf(status);
    const retryAfterMs = this.retryAfterMs(status)!;
    const s = this.state;
    const lost = this.lostOwnership();
    if (lost !== undefined) return new HailstoneError('OWNERSHIP_LOST', `node ${this.nodeId} ${this.ownershipLostText(lost)}`, { retryAfterMs });
    const why =
      s.kind === 'storage-failing'
        ? `the reservation cannot be extended: ${s.failure ?? 'storage is failing'} (${s.lastError.message})`
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
    const { reason, retryAfterMs } = this.unhealthy(now);
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
      ownershipLost: this.lostOwnership(),
      firstStart: this.firstStart,
      closed: this.state.kind === 'closed',
      generator: this.gen.counters(),
      refusals: { ...this.refusals },
      reservationWrites: this.writeLatency.snapshot(),
      renewalMarginMs: Math.round(this.planner.marginMs()),
    };
  }

  /** Why the node is not healthy now, and when it may be again; both undefined when it is. */
  private unhealthy(now: number): { reason: string | undefined; retryAfterMs: number | undefined } {
    const s = this.state;
    switch (s.kind) {
      case 'ownership-lost':
        return { reason: this.ownershipLostText(s.reason), retryAfterMs: this.store.lostRetryAfterMs ?? OWNERSHIP_LOST_RETRY_MS };
      case 'closed':
        if (s.ownershipLost !== undefined) return { reason: this.ownershipLostText(s.ownershipLost), retryAfterMs: this.store.lostRetryAfterMs ?? OWNERSHIP_LOST_RETRY_MS };
        return { reason: 'closed', retryAfterMs: undefined };
      case 'storage-failing':
        return { reason: `${s.failure ?? 'storage errors'} since ${iso(s.since)}: ${s.lastError.message}`, retryAfterMs: Math.max(RETRY_MIN_MS, s.retryAt - this.wallClock()) };
      case 'issuing': {
        // Could it issue right now? (A clock stepped back past the lead refuses every request.)
        const peek = this.gen.peek();
        if (peek.status !== 0 && peek.status !== STATUS_LIMIT_REACHED) return { reason: `cannot issue now: ${this.gen.refusalOf(peek.status).message}`, retryAfterMs: peek.retryAfterMs };
        if (this.reservedUntil <= now) return { reason: 'the reservation is not ahead of the clock (renewal pending or the clock jumped forward)', retryAfterMs: RETRY_MIN_MS };
        return { reason: undefined, retryAfterMs: undefined };
      }
    }
  }

  stopIssuing(reason: string): void {
    if (this.state.kind === 'ownership-lost' || this.state.kind === 'closed') return;
    this.state = { kind: 'ownership-lost', reason };
    this.storageEpisode.abandoned('the node stopped issuing');
    this.logger.error(
      { nodeId: this.nodeId, worker: this.worker.index, reason, store: this.store.where, lastIssued: iso(this.gen.lastTimestamp() ?? -1) },
      `node ${this.nodeId} ${this.ownershipLostText(reason)}`,
    );
  }

  async close(): Promise<void> {
    if (this.state.kind === 'closed') return;
    this.state = { kind: 'closed', ownershipLost: this.lostOwnership() };
    this.timer.cancel();
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

  private ownershipLostText(reason: string): string {
    return `lost its ${this.store.ownership}: ${reason}. It stopped issuing ids; ${this.store.afterLoss}`;
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

  /** Whether the node still issues (or may again): neither closed nor without its node id. */
  private get running(): boolean {
    return this.state.kind === 'issuing' || this.state.kind === 'storage-failing';
  }

  /** Between renewals: proves ownership every VERIFY_EVERY_MS (the store's cheap check). */
  private maybeVerify(): void {
    if (this.store.verify === undefined || !this.running || this.writing !== undefined) return;
    if (this.wallClock() - this.lastVerified < VERIFY_EVERY_MS) return;
    this.lastVerified = this.wallClock();
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
    const s = this.state;
    if (!this.running || this.writing !== undefined) return;
    const failing = s.kind === 'storage-failing';
    if (failing && this.wallClock() < s.retryAt) return;
    const plan = this.planner.plan(this.clock(), this.gen.lastTimestamp(), this.reservedUntil);
    if (!plan.due && !urgent && !failing) return;
    if (plan.target <= this.reservedUntil) return;
    // The store proves ownership before it writes: this counts as the periodic proof.
    this.lastVerified = this.wallClock();
    const started = this.wallClock();
    this.writing = this.persist(plan.target).finally(() => {
      const ms = this.wallClock() - started;
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
      this.failed(error);
      return;
    }
    if (this.state.kind === 'closed' && target <= this.reservedUntil) return;
    this.reservedUntil = target;
    this.gen.setLimit(target);
    this.renewals++;
    if (this.state.kind === 'storage-failing') {
      this.storageEpisode.recovered();
      this.state = { kind: 'issuing' };
    }
  }

  /** A save failed (not for ownership): storage-failing, with a retry after a backoff. */
  private failed(error: unknown): void {
    const now = this.wallClock();
    this.storageErrors++;
    const lastError: StorageError = { code: errorCode(error), message: String((error as Error)?.message ?? error), at: now };
    this.lastStorageError = lastError;
    const failure = this.store.describeFailure?.(error);
    // This failure's number within the episode.
    const failures = this.storageEpisode.count + 1;
    // Back off, but keep retrying often enough to resume soon after storage recovers.
    const delay = Math.min(RETRY_MIN_MS * 2 ** Math.min(failures, 10), Math.max(RETRY_MIN_MS, this.reservationMs / 4));
    const s = this.state;
    if (s.kind === 'issuing' || s.kind === 'storage-failing') {
      this.state = { kind: 'storage-failing', since: s.kind === 'storage-failing' ? s.since : now, retryAt: now + delay, lastError, failure };
    }
    this.storageEpisode.failed(
      `cannot extend the durable reservation${failure === undefined ? '' : `: ${failure}`} (${lastError.message}); ` + `issuing only up to ${iso(this.reservedUntil)}, then refusing`,
      { code: lastError.code, reservedUntil: this.reservedUntil, retryInMs: delay },
    );
  }
}
