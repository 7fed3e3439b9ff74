// What a node is to those who use it: the HailstoneNode interface, its status, and why it
// refuses. node.ts implements it.

import type { HailstoneError } from '../errors.js';
import type { Backend, GeneratorCounters } from '../generator.js';
import type { Layout, WorkerStripe } from '../layout.js';
import type { LatencySnapshot } from '../latency.js';

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
