// The coordinator port: the part of etcd that fleet mode uses, as one interface. Claims,
// lease sessions, reservations, discovery and `fleet status` speak only this; the etcd3
// adapter (etcd-adapter.ts) implements it over gRPC, and an in-memory coordinator with
// etcd's semantics and faults implements it for the fleet simulator (test/sim/). One
// contract suite runs against both (test/coordinator.contract.test.ts).
//
// Revisions are decimal strings, as etcd's int64s arrive. A failure of the coordinator is a
// CoordinatorError whose kind says what the caller can do about it; any other error is a
// bug and is never waited on.

/** A key as the coordinator holds it. */
export interface KeyValue {
  key: string;
  value: string;
  /** The revision of the transaction that created the key (it changes only when it is deleted and made again). */
  createRevision: string;
  /** The revision of the last write to the key. */
  modRevision: string;
  /** The lease the key is attached to; '0' for none. */
  lease: string;
}

/** One comparison of a transaction: a key's create revision, mod revision ('0': absent) or value. */
export interface Compare {
  key: string;
  target: 'create' | 'mod' | 'value';
  equals: string;
}

/** One operation of a transaction's branch. */
export type Op =
  | { put: string; value: string; lease?: string }
  | { get: string }
  /** Every key under a prefix, in key order. */
  | { range: string; keysOnly?: boolean }
  | { delete: string };

export interface TxnResult {
  /** Whether every compare held (the `then` branch ran), or not (the `otherwise` branch). */
  succeeded: boolean;
  /** The store's revision after the transaction. */
  revision: string;
  /** What each operation of the branch that ran read: the keys for get and range, [] otherwise. */
  reads: KeyValue[][];
}

export interface LeaseTtl {
  leftS: number;
  grantedS: number;
  /** The raft term of the leader that answered: it changes when a new leader is elected. */
  term: string;
}

/** A change a watch delivers. */
export interface WatchEvent {
  type: 'put' | 'delete';
  kv: KeyValue;
}

export interface Watch {
  cancel(): Promise<void>;
}

export interface Coordinator {
  /** Where it is, for messages ("http://10.0.0.1:2379,…"). */
  readonly describe: string;
  /** Whether each member answered its last request (true) or is passed over (false); empty when there is one. */
  readonly health: ReadonlyMap<string, boolean>;
  /** All compares hold → `then`, else `otherwise`; applied atomically, linearizably. */
  txn(compares: Compare[], then: Op[], otherwise?: Op[]): Promise<TxnResult>;
  /** A linearizable read of one key. */
  get(key: string): Promise<KeyValue | undefined>;
  /** A linearizable read of every key under a prefix, and the revision it was read at. */
  range(prefix: string, options?: { keysOnly?: boolean }): Promise<{ kvs: KeyValue[]; revision: string }>;
  /** Grants a lease of `ttlS` seconds: its id. */
  grantLease(ttlS: number): Promise<string>;
  /**
   * Renews a lease, trying for at most `timeoutMs`: resolves with the TTL it now has, or
   * rejects with kind 'lease-gone' when the lease no longer exists.
   */
  keepAlive(leaseId: string, timeoutMs: number): Promise<number>;
  /** Ends a lease at once, deleting every key attached to it. */
  revokeLease(leaseId: string): Promise<void>;
  /** Stops handling a lease here (it runs out in the coordinator by itself). */
  forgetLease(leaseId: string): void;
  /**
   * The lease's TTL left and granted, seconds, and the leader's term that answered (a new
   * leader gives every lease a fresh TTL); undefined when the lease is gone.
   */
  leaseTimeToLive(leaseId: string): Promise<LeaseTtl | undefined>;
  /** Delivers every change under `prefix` from `fromRevision` on, in order. */
  watch(prefix: string, fromRevision: string, onEvent: (event: WatchEvent) => void): Promise<Watch>;
  close(): void;
}

/**
 * What went wrong, as far as a caller can act on it:
 * - unreachable: no answer in time (down, partitioned, stalled): waiting may cure it;
 * - failed: the coordinator answered with an error of its own (a leader change, too many
 *   requests, a refusal — TLS, password, permission — which the caller tells apart first);
 * - lease-gone: the lease asked about no longer exists (expired or revoked).
 */
export type CoordinatorFailure = 'unreachable' | 'failed' | 'lease-gone';

export class CoordinatorError extends Error {
  override readonly name = 'CoordinatorError';
  constructor(
    readonly kind: CoordinatorFailure,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** Whether a request failed because the coordinator could not be reached in time. */
export function coordinatorUnreachable(error: unknown): boolean {
  return error instanceof CoordinatorError && error.kind === 'unreachable';
}

/** Whether the coordinator says the lease is gone: keeping it alive cannot help. */
export function leaseGone(error: unknown): boolean {
  return error instanceof CoordinatorError && error.kind === 'lease-gone';
}

/** Whether a request failed in a way asking again may cure (anything the coordinator itself failed with). */
export function coordinatorFailed(error: unknown): boolean {
  return error instanceof CoordinatorError;
}

/** An error's message for a one-line report: its first line, without gRPC's empty "Resolution note". */
export function coordinatorMessage(error: unknown): string {
  const text = error instanceof Error ? error.message : String(error);
  return text.split('\n')[0]!.replace(/\.?\s*Resolution note:\s*$/, '');
}

/** The first operation's keys of a transaction's branch that ran. */
export function readOf(result: TxnResult, n: number): KeyValue[] {
  return result.reads[n] ?? [];
}
