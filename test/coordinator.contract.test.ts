// One contract for the coordinator port (src/fleet/coordinator.ts), run against the real
// etcd through the etcd3 adapter and against the in-memory coordinator the fleet simulator
// uses: the revisions, compares, leases and watches fleet mode relies on behave the same
// in both, so what the simulator shows holds against etcd.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Coordinator, CoordinatorError, type WatchEvent } from '../src/fleet/coordinator.js';
import { EtcdCoordinator, connectEtcd } from '../src/fleet/etcd-adapter.js';
import { TestEtcd, etcdInstalled, requireEtcd } from './support/etcd.js';
import { waitFor } from './support/child.js';
import { liveMemoryEtcd } from './sim/live.js';

requireEtcd();

interface PortSubject {
  name: string;
  connect(): Promise<Coordinator>;
  done(): Promise<void>;
}

const subjects: PortSubject[] = [];
let etcd: TestEtcd | undefined;
const opened: Coordinator[] = [];

if (etcdInstalled) {
  subjects.push({
    name: 'etcd (the etcd3 adapter)',
    async connect() {
      etcd ??= await TestEtcd.start();
      const c = new EtcdCoordinator(connectEtcd({ endpoints: [etcd.endpoint] }), [etcd.endpoint]);
      opened.push(c);
      return c;
    },
    async done() {
      for (const c of opened.splice(0)) c.close();
      await etcd?.stop();
    },
  });
}
const memory = liveMemoryEtcd();
subjects.push({ name: 'the in-memory coordinator', connect: async () => memory.connect(), done: async () => undefined });

let n = 0;
const fresh = () => `contract/${n++}/`;

describe.each(subjects)('the coordinator port: $name', (subject) => {
  let c: Coordinator;
  beforeAll(async () => {
    c = await subject.connect();
  }, 60_000);
  afterAll(() => subject.done(), 30_000);

  it('create-if-absent: the first transaction wins; the second runs its otherwise branch and reads the winner', async () => {
    const key = `${fresh()}claim`;
    const first = await c.txn([{ key, target: 'create', equals: '0' }], [{ put: key, value: 'a' }], [{ get: key }]);
    expect(first.succeeded).toBe(true);
    expect(first.reads).toEqual([[]]);
    const second = await c.txn([{ key, target: 'create', equals: '0' }], [{ put: key, value: 'b' }], [{ get: key }]);
    expect(second.succeeded).toBe(false);
    const [kv] = second.reads[0]!;
    expect(kv).toMatchObject({ key, value: 'a', createRevision: first.revision, modRevision: first.revision, lease: '0' });
    expect(BigInt(second.revision)).toBe(BigInt(first.revision));
  });

  it('a mod-revision compare: a write succeeds only against the revision it last saw, and each write raises the revision', async () => {
    const key = `${fresh()}r`;
    const a = await c.txn([{ key, target: 'mod', equals: '0' }], [{ put: key, value: '1' }]);
    expect(a.succeeded).toBe(true);
    const stale = await c.txn([{ key, target: 'mod', equals: '0' }], [{ put: key, value: '2' }]);
    expect(stale.succeeded).toBe(false);
    const b = await c.txn([{ key, target: 'mod', equals: a.revision }], [{ put: key, value: '3' }]);
    expect(b.succeeded).toBe(true);
    expect(BigInt(b.revision)).toBeGreaterThan(BigInt(a.revision));
    expect(await c.get(key)).toMatchObject({ value: '3', createRevision: a.revision, modRevision: b.revision });
  });

  it('a value compare guards a delete; a get of an absent key is undefined', async () => {
    const key = `${fresh()}v`;
    await c.txn([{ key, target: 'create', equals: '0' }], [{ put: key, value: 'holder-1' }]);
    expect((await c.txn([{ key, target: 'value', equals: 'holder-2' }], [{ delete: key }])).succeeded).toBe(false);
    expect(await c.get(key)).toBeDefined();
    expect((await c.txn([{ key, target: 'value', equals: 'holder-1' }], [{ delete: key }])).succeeded).toBe(true);
    expect(await c.get(key)).toBeUndefined();
  });

  it('prefix reads: every key under the prefix in key order, values left out when asked, inside a transaction too', async () => {
    const prefix = fresh();
    for (const k of ['b', 'a', 'c']) await c.txn([{ key: `${prefix}${k}`, target: 'create', equals: '0' }], [{ put: `${prefix}${k}`, value: k.toUpperCase() }]);
    await c.txn([{ key: `${prefix}zz-outside`, target: 'create', equals: '0' }], [{ put: `${prefix.slice(0, -1)}x/outside`, value: 'no' }]);
    const all = await c.range(prefix);
    expect(all.kvs.map((kv) => [kv.key.slice(prefix.length), kv.value])).toEqual([['a', 'A'], ['b', 'B'], ['c', 'C']]);
    const keys = await c.range(prefix, { keysOnly: true });
    expect(keys.kvs.map((kv) => kv.value)).toEqual(['', '', '']);
    const inTxn = await c.txn([{ key: `${prefix}a`, target: 'value', equals: 'A' }], [{ range: prefix }]);
    expect(inTxn.reads[0]!.map((kv) => kv.value)).toEqual(['A', 'B', 'C']);
  });

  it('leases: a key put with a lease lives while it is kept alive and goes when it is revoked; the lease is then gone', async () => {
    const key = `${fresh()}leased`;
    const lease = await c.grantLease(30);
    await c.txn([{ key, target: 'create', equals: '0' }], [{ put: key, value: 'x', lease }]);
    expect((await c.get(key))?.lease).toBe(lease);
    expect(await c.keepAlive(lease, 2000)).toBe(30);
    const ttl = await c.leaseTimeToLive(lease);
    expect(ttl?.grantedS).toBe(30);
    expect(ttl!.leftS).toBeGreaterThanOrEqual(28);
    expect(ttl!.term).toMatch(/^[1-9][0-9]*$/);
    await c.revokeLease(lease);
    expect(await c.get(key)).toBeUndefined();
    expect(await c.leaseTimeToLive(lease)).toBeUndefined();
    const keepalive = await c.keepAlive(lease, 2000).catch((e: unknown) => e);
    expect(keepalive).toBeInstanceOf(CoordinatorError);
    expect((keepalive as CoordinatorError).kind).toBe('lease-gone');
    const put = await c.txn([{ key, target: 'create', equals: '0' }], [{ put: key, value: 'y', lease }]).catch((e: unknown) => e);
    expect((put as CoordinatorError).kind).toBe('lease-gone');
  });

  it('a lease not kept alive expires, and the keys attached to it go with it', async () => {
    const key = `${fresh()}expiring`;
    const lease = await c.grantLease(1);
    await c.txn([{ key, target: 'create', equals: '0' }], [{ put: key, value: 'x', lease }]);
    await waitFor(async () => (await c.get(key)) === undefined, { what: 'the key of an expired lease to go', timeoutMs: 10_000 });
    expect(await c.leaseTimeToLive(lease)).toBeUndefined();
  }, 15_000);

  it('a watch from a revision delivers every change under the prefix from there on, in order', async () => {
    const prefix = fresh();
    const first = await c.txn([{ key: `${prefix}1`, target: 'create', equals: '0' }], [{ put: `${prefix}1`, value: 'a' }]);
    // Made after the revision the watch starts from, before the watch: not missed.
    await c.txn([{ key: `${prefix}2`, target: 'create', equals: '0' }], [{ put: `${prefix}2`, value: 'b' }]);
    const events: WatchEvent[] = [];
    const watch = await c.watch(prefix, String(BigInt(first.revision) + 1n), (e) => events.push(e));
    try {
      await c.txn([{ key: `${prefix}1`, target: 'value', equals: 'a' }], [{ delete: `${prefix}1` }]);
      await waitFor(() => events.length >= 2, { what: 'two watch events', timeoutMs: 10_000 });
      expect(events.map((e) => `${e.type} ${e.kv.key.slice(prefix.length)}`)).toEqual(['put 2', 'delete 1']);
      expect(events[0]!.kv.value).toBe('b');
    } finally {
      await watch.cancel();
    }
  });
});
