// Where a node keeps its durable reservation R: the promise that no id of its node id has
// a timestamp past R. Two stores keep the same thing — a state file next to a lock file
// (file-store.ts), and etcd keys guarded by a lease (src/fleet/) — and one set of rules
// uses either (node.ts): startup, renewal, limits, failing closed.

/** Thrown by a store that has proof it no longer owns the node id (lock removed, claim gone). */
export class OwnershipLostError extends Error {
  override readonly name = 'OwnershipLostError';
}

export interface StoredFloor {
  /**
   * The highest reservation stored for this node id — under any worker count, by any
   * earlier holder — or undefined when there is none.
   */
  floor: number | undefined;
  /**
   * The floor may be missing what an earlier run issued: a record that could have been
   * lost is absent. The node then also waits out one lead window (node.ts). A state file
   * says so whenever this very stripe has no file (it never ran here, or its file was
   * deleted). etcd keeps every R it acknowledged, and no id is issued past one, so the
   * etcd store says so only when nothing at all is stored for the node id.
   */
  firstStart: boolean;
}

export interface ReservationStore {
  /** Where the reservation lives, for messages: "state file …", "etcd key …". */
  readonly where: string;
  /** What proves ownership, for messages: "state lock", "claim". */
  readonly ownership: string;
  /** Once ownership is lost: what happens next and what to do (the file store's: find what removed the lock). */
  readonly afterLoss: string;
  /** Once ownership is lost: the retry-after clients get (default 60 s: ask another server). */
  readonly lostRetryAfterMs?: number;
  /**
   * Where a stored reservation far ahead of the clock can come from besides this machine's
   * own clock, and what to do about it (etcd: another holder of the node id whose clock ran
   * fast). Absent: the reservation was this machine's, so its clock stepped back.
   */
  readonly farAheadAdvice?: string;
  /**
   * Reservation to keep left when a renewal starts, at least (renewal.ts caps it at ¾ of the
   * lead): how long one save can stall before the store tries elsewhere. Default 0.
   */
  readonly renewalMarginMs?: number;
  /** What to do when saves are too slow for the lead (default: raise the lead or use faster storage). */
  readonly slowWriteAdvice?: string;
  /**
   * How a failed save reads to an operator when the cause is not the local disk, e.g.
   * "coordinator (etcd) unreachable". Undefined (or absent): storage errors.
   */
  describeFailure?(error: unknown): string | undefined;
  /**
   * Takes ownership of this node id and worker stripe (refusing with STATE_LOCKED or
   * NODE_ID_TAKEN while another live process has it) and reads where earlier holders left off.
   */
  open(): Promise<StoredFloor>;
  /**
   * Stores `reservedUntil` durably. Resolves only once it is durable and ownership was
   * proved after it was stored; rejects with OwnershipLostError when ownership is
   * disproved, or with another error when storing failed (the old reservation then holds).
   * May resolve with a later R stored as durably (a node's one reservation in fleet mode,
   * which reaches further for every stripe at once): the node may then issue up to it.
   */
  save(reservedUntil: number, writtenAt: number): Promise<number | void>;
  /**
   * Checks between renewals that ownership still holds (cheap: run every few hundred ms);
   * rejects with OwnershipLostError when it does not. Optional.
   */
  verify?(): Promise<void>;
  /** Lets go of ownership. The stored reservation stays. */
  close(): Promise<void>;
}

/** What a save made durable: the R asked for, or the later one the store says it stored. */
export function reachOf(asked: number, stored: number | void): number {
  return typeof stored === 'number' && stored > asked ? stored : asked;
}
