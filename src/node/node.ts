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

import { STATUS_LIMIT_REACHED } from '../core/constants.js';
import { HailstoneError } from '../errors.js';
import type { Backend, Generator } from '../generator.js';
import type { Layout, WorkerStripe } from '../layout.js';
import { LatencyHistogram } from '../latency.js';
import { FailureEpisode } from '../log-episode.js';
import type { NodeLogger } from '../logger.js';
import { NodeWarnings } from './node-warnings.js';
import type { CheckedRules } from './options.js';
import { RenewalPlanner } from './renewal.js';
import type { HailstoneNode, NodeStatus, RefusalReason } from './hailstone-node.js';
import {
  type NodeFacts,
  type NodeState,
  RETRY_MIN_MS,
  type StorageError,
  iso,
  lostOwnership,
  ownershipLostText,
  refusalOf,
  refusalReason,
  retryAfterMs,
  running,
  stoppedStatus,
  unhealthy,
} from './node-state.js';
import { OwnershipLostError, type ReservationStore, reachOf } from './store.js';

export type { HailstoneNode, NodeStatus, RefusalReason } from './hailstone-node.js';
export type { NodeState } from './node-state.js';

/** How often a node proves it still owns its node id between renewals. */
const VERIFY_EVERY_MS = 250;
/** How often a node checks whether its reservation is due for renewal (at most). */
const CHECK_EVERY_MS = 50;

function errorCode(error: unknown): string {
  return (error as NodeJS.ErrnoException | undefined)?.code ?? 'EUNKNOWN';
}

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
  private readonly warnings: NodeWarnings;
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
    this.warnings = new NodeWarnings(this.logger, { nodeId: this.nodeId, worker: this.worker.index, maxLeadMs: this.maxLeadMs, store: this.store });
    this.storageEpisode = new FailureEpisode(this.logger, { what: 'durable reservation writes', fields: { nodeId: this.nodeId, worker: this.worker.index }, now: this.wallClock });
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
    this.warnings.clockSteps(this.gen, this.clock());
  }

  nextId(): bigint {
    const stopped = stoppedStatus(this.state);
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
    const written = stoppedStatus(this.state) ?? this.gen.tryFill(buffer, offset, count);
    if (written >= 0) return written;
    this.refusals[this.refusalReason(written)]++;
    // At the reservation: start extending it now rather than at the next timer tick.
    if (written === STATUS_LIMIT_REACHED) this.maybeRenew(true);
    return written;
  }

  /** What the answers for the current state depend on besides it. */
  private facts(): NodeFacts {
    return { nodeId: this.nodeId, store: this.store, gen: this.gen, wallNow: this.wallClock(), tooSlowForLead: this.planner.tooSlowForLead };
  }

  refusalReason(status: number): RefusalReason {
    return refusalReason(this.state, status, this.planner);
  }

  retryAfterMs(status: number): number | undefined {
    return retryAfterMs(this.state, status, this.facts());
  }

  refusalOf(status: number): HailstoneError {
    return refusalOf(this.state, status, this.facts());
  }

  lastTimestamp(): number | undefined {
    return this.gen.lastTimestamp();
  }

  status(): NodeStatus {
    const now = this.clock();
    const logical = this.gen.lastTimestamp() ?? now;
    const { reason, retryAfterMs: retryAfter } = unhealthy(this.state, { ...this.facts(), now, reservedUntil: this.reservedUntil });
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
      retryAfterMs: retryAfter,
      renewals: this.renewals,
      storageErrors: this.storageErrors,
      lastStorageError: this.lastStorageError,
      ownershipLost: lostOwnership(this.state),
      firstStart: this.firstStart,
      closed: this.state.kind === 'closed',
      generator: this.gen.counters(),
      refusals: { ...this.refusals },
      reservationWrites: this.writeLatency.snapshot(),
      renewalMarginMs: Math.round(this.planner.marginMs()),
    };
  }

  stopIssuing(reason: string): void {
    if (this.state.kind === 'ownership-lost' || this.state.kind === 'closed') return;
    this.state = { kind: 'ownership-lost', reason };
    this.storageEpisode.abandoned('the node stopped issuing');
    this.logger.error(
      { nodeId: this.nodeId, worker: this.worker.index, reason, store: this.store.where, lastIssued: iso(this.gen.lastTimestamp() ?? -1) },
      `node ${this.nodeId} ${ownershipLostText(this.store, reason)}`,
    );
  }

  async close(): Promise<void> {
    if (this.state.kind === 'closed') return;
    this.state = { kind: 'closed', ownershipLost: lostOwnership(this.state) };
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

  /** Between renewals: proves ownership every VERIFY_EVERY_MS (the store's cheap check). */
  private maybeVerify(): void {
    if (this.store.verify === undefined || !running(this.state) || this.writing !== undefined) return;
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
    if (!running(this.state) || this.writing !== undefined) return;
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
      this.warnings.writeSpeed(this.planner);
      this.writing = undefined;
    });
  }

  private async persist(asked: number): Promise<void> {
    let target: number;
    try {
      target = reachOf(asked, await this.store.save(asked, this.clock()));
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
    // A save still in flight when the node stopped (fenced, closed) fails after it: nothing
    // is issued any more, so there is no episode to start or say.
    if (this.state.kind !== 'issuing' && this.state.kind !== 'storage-failing') return;
    const failure = this.store.describeFailure?.(error);
    // This failure's number within the episode.
    const failures = this.storageEpisode.count + 1;
    // Back off, but keep retrying often enough to resume soon after storage recovers.
    const delay = Math.min(RETRY_MIN_MS * 2 ** Math.min(failures, 10), Math.max(RETRY_MIN_MS, this.reservationMs / 4));
    const s = this.state;
    this.state = { kind: 'storage-failing', since: s.kind === 'storage-failing' ? s.since : now, retryAt: now + delay, lastError, failure };
    this.storageEpisode.failed(
      `cannot extend the durable reservation${failure === undefined ? '' : `: ${failure}`} (${lastError.message}); ` + `issuing only up to ${iso(this.reservedUntil)}, then refusing`,
      { code: lastError.code, reservedUntil: this.reservedUntil, retryInMs: delay },
    );
  }
}
