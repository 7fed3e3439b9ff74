// An in-memory coordinator with etcd's semantics where hailstone depends on them, on the
// simulator's virtual time: one revision counter bumped by every write; keys with create and
// mod revisions; transactions applied atomically, at one instant (linearizable); leases
// whose expiry deletes the keys attached to them; a watch that delivers every change from a
// revision in order. Like etcd, a new leader gives every lease a fresh TTL.
//
// MemoryEtcd is the cluster's state; each process talks to it through a MemoryClient
// (memory-client.ts), which is where the network and its faults live.

import type { Compare, KeyValue, LeaseTtl, Op, TxnResult, WatchEvent } from '../../src/fleet/coordinator.js';

interface LeaseState {
  ttlS: number;
  /** Virtual ms at which it expires. */
  expiresAt: number;
  keys: Set<string>;
}

interface WatchState {
  prefix: string;
  onEvent: (event: WatchEvent) => void;
}

/** What applying a request answers: a value, or that a lease is gone. */
export type Applied<T> = { ok: true; value: T } | { ok: false; leaseGone: string };

export class MemoryEtcd {
  private revision = 1;
  /** The leader's term: raised by every election. */
  private term = 2;
  private readonly keys = new Map<string, KeyValue>();
  private readonly leases = new Map<string, LeaseState>();
  private readonly watches = new Set<WatchState>();
  /** Every change, in order, for watches that start from an earlier revision. */
  private readonly history: { revision: number; event: WatchEvent }[] = [];
  private nextLease = 0x1000;
  /** Requests applied, by kind: what the fleet costs the coordinator. */
  readonly requests = { txn: 0, range: 0, get: 0, grant: 0, keepalive: 0, revoke: 0, ttl: 0, watch: 0 };

  constructor(private readonly now: () => number) {}

  /** Deletes the keys of every lease whose time is up (etcd's leader does this as leases run out). */
  expireLeases(): void {
    const now = this.now();
    for (const [id, lease] of this.leases) {
      if (lease.expiresAt <= now) this.endLease(id);
    }
  }

  /** A new leader: every lease lives a full TTL from now (etcd's lease renewal on election). */
  elected(): void {
    this.term++;
    const now = this.now();
    for (const lease of this.leases.values()) lease.expiresAt = now + lease.ttlS * 1000;
  }

  txn(compares: Compare[], then: Op[], otherwise: Op[]): Applied<TxnResult> {
    this.requests.txn++;
    this.expireLeases();
    const succeeded = compares.every((c) => this.holds(c));
    const ops = succeeded ? then : otherwise;
    // A put to a lease that is gone fails the whole transaction, as in etcd.
    for (const op of ops) {
      if ('put' in op && op.lease !== undefined && op.lease !== '0' && !this.leases.has(op.lease)) return { ok: false, leaseGone: 'etcdserver: requested lease not found' };
    }
    const writes = ops.some((op) => 'put' in op || ('delete' in op && this.keys.has(op.delete)));
    if (writes) this.revision++;
    const reads: KeyValue[][] = [];
    for (const op of ops) {
      if ('put' in op) {
        this.put(op.put, op.value, op.lease ?? '0');
        reads.push([]);
      } else if ('delete' in op) {
        this.remove(op.delete);
        reads.push([]);
      } else if ('get' in op) {
        const kv = this.keys.get(op.get);
        reads.push(kv === undefined ? [] : [{ ...kv }]);
      } else reads.push(this.under(op.range, op.keysOnly === true));
    }
    return { ok: true, value: { succeeded, revision: String(this.revision), reads } };
  }

  get(key: string): KeyValue | undefined {
    this.requests.get++;
    this.expireLeases();
    const kv = this.keys.get(key);
    return kv === undefined ? undefined : { ...kv };
  }

  range(prefix: string, keysOnly: boolean): { kvs: KeyValue[]; revision: string } {
    this.requests.range++;
    this.expireLeases();
    return { kvs: this.under(prefix, keysOnly), revision: String(this.revision) };
  }

  grant(ttlS: number): string {
    this.requests.grant++;
    const id = String(this.nextLease++);
    this.leases.set(id, { ttlS, expiresAt: this.now() + ttlS * 1000, keys: new Set() });
    return id;
  }

  keepAlive(id: string): Applied<number> {
    this.requests.keepalive++;
    this.expireLeases();
    const lease = this.leases.get(id);
    if (lease === undefined) return { ok: false, leaseGone: 'etcdserver: requested lease not found' };
    lease.expiresAt = this.now() + lease.ttlS * 1000;
    return { ok: true, value: lease.ttlS };
  }

  revoke(id: string): void {
    this.requests.revoke++;
    if (this.leases.has(id)) {
      this.revision++;
      this.endLease(id, false);
    }
  }

  timeToLive(id: string): LeaseTtl | undefined {
    this.requests.ttl++;
    this.expireLeases();
    const lease = this.leases.get(id);
    if (lease === undefined) return undefined;
    // etcd answers whole seconds, rounded down.
    return { leftS: Math.max(0, Math.floor((lease.expiresAt - this.now()) / 1000)), grantedS: lease.ttlS, term: String(this.term) };
  }

  /** Whether a lease exists (for the deposed-leader fault: only a live lease can be wrongly said gone). */
  hasLease(id: string): boolean {
    return this.leases.has(id);
  }

  watch(prefix: string, fromRevision: number, onEvent: (event: WatchEvent) => void): () => void {
    this.requests.watch++;
    for (const past of this.history) {
      if (past.revision >= fromRevision && past.event.kv.key.startsWith(prefix)) onEvent(past.event);
    }
    const state = { prefix, onEvent };
    this.watches.add(state);
    return () => this.watches.delete(state);
  }

  /** An operator's put (etcdctl put): no compare, no lease. */
  adminPut(key: string, value: string): void {
    this.revision++;
    this.put(key, value, '0');
  }

  /** An operator's delete (etcdctl del). */
  adminDelete(key: string): void {
    if (!this.keys.has(key)) return;
    this.revision++;
    this.remove(key);
  }

  private holds(c: Compare): boolean {
    const kv = this.keys.get(c.key);
    if (c.target === 'value') return kv !== undefined && kv.value === c.equals;
    const actual = kv === undefined ? '0' : c.target === 'create' ? kv.createRevision : kv.modRevision;
    return actual === c.equals;
  }

  private put(key: string, value: string, lease: string): void {
    const old = this.keys.get(key);
    if (old !== undefined && old.lease !== '0') this.leases.get(old.lease)?.keys.delete(key);
    const kv: KeyValue = { key, value, createRevision: old?.createRevision ?? String(this.revision), modRevision: String(this.revision), lease };
    this.keys.set(key, kv);
    if (lease !== '0') this.leases.get(lease)!.keys.add(key);
    this.emit({ type: 'put', kv: { ...kv } });
  }

  private remove(key: string): void {
    const old = this.keys.get(key);
    if (old === undefined) return;
    this.keys.delete(key);
    if (old.lease !== '0') this.leases.get(old.lease)?.keys.delete(key);
    this.emit({ type: 'delete', kv: { ...old, modRevision: String(this.revision), value: '' } });
  }

  private endLease(id: string, bump = true): void {
    const lease = this.leases.get(id);
    if (lease === undefined) return;
    this.leases.delete(id);
    if (lease.keys.size > 0 && bump) this.revision++;
    for (const key of [...lease.keys]) this.remove(key);
  }

  private under(prefix: string, keysOnly: boolean): KeyValue[] {
    return [...this.keys.values()]
      .filter((kv) => kv.key.startsWith(prefix))
      .sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0))
      .map((kv) => (keysOnly ? { ...kv, value: '' } : { ...kv }));
  }

  private emit(event: WatchEvent): void {
    this.history.push({ revision: this.revision, event });
    if (this.history.length > 10_000) this.history.splice(0, 5_000);
    for (const w of this.watches) if (event.kv.key.startsWith(w.prefix)) w.onEvent(event);
  }
}
