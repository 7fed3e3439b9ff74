// A fleet at scale against a real etcd: 256 claimants starting at once, each within a
// request budget that does not grow with the fleet; then a power loss of the whole fleet
// and a new one that must start every node id above where the old one left it. Beside it,
// what makes that so: the pick of a free id, the node's one reservation shared by its
// stripes, a lease that expires mid-claim, and the proof that a holder on this machine is
// gone. (npm run bench:fleet-scale runs the same at 1024, and against 3 etcd members.)

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runFleetScale } from '../bench/fleet-scale-run.js';
import { HailstoneError } from '../src/errors.js';
import { createClient } from '../src/create-client.js';
import { claimNodeId } from '../src/fleet/claim.js';
import { formatReservation, reservationKey } from '../src/fleet/etcd.js';
import { EtcdCoordinator, connectEtcd } from '../src/fleet/etcd-adapter.js';
import { systemRuntime } from '../src/system-runtime.js';
import { WHOLE_NODE } from '../src/fleet/etcd-store.js';
import { NodeReservation } from '../src/fleet/node-reservation.js';
import { PICK_WINDOW_MIN, pickFreeNodeId } from '../src/fleet/pick-node-id.js';
import { ownIdentity, processStart, provablyGone, serverHostname } from '../src/fleet/process-identity.js';
import { OwnershipLostError, type ReservationStore } from '../src/node/store.js';
import type { NodeLogger } from '../src/logger.js';
import { exited, spawnTracked } from './support/child.js';
import { TestEtcd, etcdInstalled, requireEtcd } from './support/etcd.js';
import { silent } from './support/logger.js';

const info = (i: number) => ({ instance: `t${i}`, host: 'test', udp: `127.0.0.1:${10000 + i}`, pid: process.pid, version: 'test', startedAt: new Date().toISOString() });

/** Documented codes a claimant may end with (docs/fleet.md); anything else is a bug. */
const DOCUMENTED = new Set(['NODE_ID_TAKEN', 'NO_FREE_NODE_ID', 'COORDINATOR_UNAVAILABLE', 'COORDINATOR_REFUSED', 'CLOSED']);

requireEtcd();

describe('picking a free node id', () => {
  it('is uniform over the lowest 64 + 2 × (claims seen) free ids, never a taken or excluded one', () => {
    const taken = new Set([0, 1, 2, 5, 8]);
    const excluded = new Set([3]);
    const window = PICK_WINDOW_MIN + 2 * taken.size;
    const seen = new Set<number>();
    for (let i = 0; i < 2000; i++) {
      const id = pickFreeNodeId(taken, excluded, 1023, () => i / 2000)!;
      expect(taken.has(id) || excluded.has(id)).toBe(false);
      seen.add(id);
    }
    // Exactly the window's ids: the lowest `window` ids that are neither taken nor excluded.
    const expected = [...Array(1024).keys()].filter((id) => !taken.has(id) && !excluded.has(id)).slice(0, window);
    expect([...seen].sort((a, b) => a - b)).toEqual(expected);
  });

  it('takes the last free ids, then says there are none', () => {
    const taken = new Set([...Array(1024).keys()].filter((id) => id !== 700));
    expect(pickFreeNodeId(taken, new Set(), 1023, () => 0.99)).toBe(700);
    expect(pickFreeNodeId(taken, new Set([700]), 1023, () => 0)).toBeUndefined();
  });
});

describe('proving a holder gone', () => {
  const self = ownIdentity();
  it.skipIf(self === undefined)('only a process on this machine and boot, in this pid namespace, that no longer runs', async () => {
    const here = { host: serverHostname(), ...self! };
    // A process that ran and is gone (reaped): its pid and start time name nobody now.
    const child = spawnTracked('sleep', ['30']);
    const start = processStart(child.pid!);
    expect(start).toBeDefined();
    const dead = { ...here, pid: child.pid, procStart: start };
    expect(provablyGone(dead)).toBe(false); // still running
    child.kill('SIGKILL');
    await exited(child);
    expect(provablyGone(dead)).toBe(true);
    // This very process is alive; a pid reused by another process (another start time) is not the holder.
    expect(provablyGone({ ...here, pid: process.pid })).toBe(false);
    expect(provablyGone({ ...here, pid: process.pid, procStart: '1' })).toBe(true);
    // Anything that cannot be proved is not.
    expect(provablyGone({ ...dead, host: 'another-host' })).toBe(false);
    expect(provablyGone({ ...dead, boot: 'another-boot' })).toBe(false);
    expect(provablyGone({ ...dead, pidns: 'pid:[1]' })).toBe(false);
    expect(provablyGone({ ...dead, procStart: undefined })).toBe(false);
    expect(provablyGone({ host: here.host, pid: child.pid })).toBe(false);
    expect(provablyGone(undefined)).toBe(false);
  });
});

/** A store whose writes are counted and can be made to fail. */
function countingStore(): ReservationStore & { writes: number[]; fail?: Error } {
  const store = {
    where: 'test store',
    ownership: 'test claim',
    afterLoss: 'claim again',
    writes: [] as number[],
    fail: undefined as Error | undefined,
    open: async () => ({ floor: 1000, firstStart: false }),
    save: async (r: number) => {
      await new Promise((resolve) => setTimeout(resolve, 5));
      if (store.fail !== undefined) throw store.fail;
      store.writes.push(r);
    },
    close: async () => undefined,
  };
  return store;
}

describe("a node's one reservation, shared by its stripes", () => {
  it('answers 16 stripes asking at once with one write reaching the lead, and later asks within it with none', async () => {
    let now = 10_000;
    const store = countingStore();
    const reservation = new NodeReservation(store, () => now, 2000);
    const reached = await Promise.all(Array.from({ length: 16 }, (_, i) => reservation.reserve(now + 1000 + i)));
    expect(store.writes).toEqual([now + 2000]);
    expect(new Set(reached)).toEqual(new Set([now + 2000]));
    now += 400;
    expect(await reservation.reserve(now + 1500)).toBe(12_000);
    expect(store.writes).toHaveLength(1);
    // A stripe opening now resumes above what the others may have issued.
    expect(await reservation.open()).toEqual({ floor: 12_000, firstStart: false });
  });

  it('never reserves past the lead, and asks beyond what was reached always write', async () => {
    let now = 50_000;
    const store = countingStore();
    const reservation = new NodeReservation(store, () => now, 300);
    for (let i = 0; i < 20; i++) {
      now += 137;
      const asked = now + 200;
      const got = await reservation.reserve(asked);
      expect(got).toBeGreaterThanOrEqual(asked);
      expect(store.writes.at(-1)!).toBeLessThanOrEqual(now + 300);
      expect(store.writes.at(-1)).toBe(got);
    }
  });

  it('a failed write fails every stripe waiting on it (ownership lost stays typed); the next ask writes again', async () => {
    const now = 1_000;
    const store = countingStore();
    const reservation = new NodeReservation(store, () => now, 2000);
    store.fail = new OwnershipLostError('the claim is gone');
    const results = await Promise.allSettled([reservation.reserve(now + 10), reservation.reserve(now + 20)]);
    expect(results.map((r) => r.status)).toEqual(['rejected', 'rejected']);
    expect((results[0] as PromiseRejectedResult).reason).toBeInstanceOf(OwnershipLostError);
    store.fail = undefined;
    expect(await reservation.reserve(now + 10)).toBe(now + 2000);
  });
});

describe.skipIf(!etcdInstalled)('a fleet at scale (real etcd)', () => {
  let etcd: TestEtcd;
  beforeAll(async () => {
    etcd = await TestEtcd.start({ extraArgs: ['--metrics', 'extensive'] });
  });
  afterAll(async () => {
    await etcd?.stop();
  });

  it('256 claimants at once: each holds a distinct id within 10 etcd requests; a node costs ≤ 2 requests/s; after a power loss of all of them, 256 new ones start every node id above the old', async () => {
    const result = await runFleetScale({
      endpoints: [etcd.endpoint],
      metrics: [`${etcd.endpoint}/metrics`],
      cluster: 'scale',
      claimants: 256,
      // As many ids as claimants: after the power loss every new claimant reuses a dead one's id.
      nodeIds: 256,
      stripes: 1,
      connections: 8,
      // The default TTL: with 256 claimants and their nodes in one process on a loaded 2-core
      // machine, a shorter lease can starve past its valid window and fence (counted below).
      leaseTtlS: 10,
      steadyMs: 3000,
      restart: true,
      idsPerNode: 5,
      logger: silent,
    });
    const { start, steady, restart } = result;
    console.log(`256 claimants: claimed in ${Math.round(Math.max(...start.claimMs))} ms, ${start.claimRequestsPerClaimant.toFixed(2)} etcd requests each to claim, ${start.startRequestsPerClaimant.toFixed(2)} with the node opened; steady ${steady?.perNodePerSec.toFixed(2)} requests/s per node; after the power loss all claimed again in ${Math.round(restart?.allClaimedAfterMs ?? NaN)} ms; nodes fenced before/after it: ${restart?.fencedBefore}/${restart?.fencedAfter}`);
    for (const failures of [start.failures, restart?.failures ?? {}]) {
      expect(Object.keys(failures).filter((code) => !DOCUMENTED.has(code))).toEqual([]);
    }
    expect(start.failures).toEqual({});
    expect(start.distinctNodeIds).toBe(256);
    expect(start.claimRequestsPerClaimant).toBeLessThanOrEqual(10);
    // Opening the node adds one read (with the claim's compare) and its first write; the
    // rest is every claim's keepalives and renewals during the first-start wait.
    expect(start.startRequestsPerClaimant - start.claimRequestsPerClaimant).toBeLessThanOrEqual(6);
    // About one reservation write a second and a keepalive a third of the TTL: ≤ 2 requests/s.
    // Nodes whose writes were slow (a loaded machine: etcd's fsyncs, late timers) renew with a
    // larger margin — twice the slowest write plus the lag — and once it passes lead −
    // reservation (1 s) they renew every lead − margin instead (fail closed, not fail often),
    // and a write slower than an attempt's 750 ms deadline is sent again: the bound follows
    // from the margin they report (half again for those retries), and both are printed.
    const margin = steady!.renewalMarginMaxMs;
    const bound = margin <= 1000 ? 2 : Math.max(2, (1.5 * 1000) / Math.max(500, 2000 - margin) + 0.7);
    console.log(`[scale] steady: ${steady!.perNodePerSec.toFixed(2)} requests/s per node (bound ${bound.toFixed(2)}); largest renewal margin ${Math.round(margin)} ms; timers up to ${Math.round(steady!.eventLoopLagMaxMs)} ms late`);
    expect(steady!.perNodePerSec).toBeLessThanOrEqual(bound);
    expect(restart!.violations).toEqual([]);
    expect(restart!.failures).toEqual({});
    expect(restart!.distinctNodeIds).toBe(256);
    // A node fenced on a starved machine issues nothing more, and is counted: never most of them.
    const fenced = restart!.fencedBefore + restart!.fencedAfter;
    expect(fenced).toBeLessThan(256 / 10);
    expect(restart!.nodeIdsAbove + restart!.fencedAfter).toBe(256);
    expect(restart!.idsChecked).toBe((256 - restart!.fencedAfter) * 5);
    // The old leases had to run out first: nobody took an id from a holder still alive.
    expect(restart!.allClaimedAfterMs).toBeGreaterThan(8000);
    // 256 claimants and their nodes in this one process, a power loss and a lease's wait:
    // about 30 s quiet, and past 120 s once on the loaded suite (three files at a time beside
    // two busy loops). Bounded; a hang still fails.
  }, 240_000);

  it("a lease that expires between the claimant's read and its claim transaction: it claims again with a new lease, never a raw etcd error", async () => {
    const client = connectEtcd({ endpoints: [etcd.endpoint] });
    const warnings: string[] = [];
    const logger: NodeLogger = { ...silent, warn: (_, m) => warnings.push(m) };
    // The first claim transaction is held past the lease's TTL (2 s, and etcd's second of grace).
    let held = 0;
    const coordinator = new EtcdCoordinator(client, [etcd.endpoint]);
    const slow = new Proxy(coordinator, {
      get(target, prop) {
        if (prop === 'txn') {
          return async (...args: Parameters<typeof target.txn>) => {
            if (held++ === 0) await new Promise((r) => setTimeout(r, 4000));
            return target.txn(...args);
          };
        }
        const value = Reflect.get(target, prop, target) as unknown;
        return typeof value === 'function' ? value.bind(target) : value;
      },
    });
    try {
      const claim = await claimNodeId({ coordinator: slow, runtime: systemRuntime, cluster: 'expiring', nodeId: undefined, maxNodeId: 1023, leaseTtlS: 2, info: info(1), logger });
      expect(held).toBeGreaterThanOrEqual(2);
      expect(warnings.join('\n')).toMatch(/the lease for claiming expired while claiming \(.*\); claiming again with a new lease/);
      expect(claim.lost).toBeUndefined();
      await claim.release();
    } finally {
      client.close();
    }
  }, 30_000);

  it('a client asking a cluster with no claims names the cluster it looked in, and the clusters that have claims', async () => {
    const client = connectEtcd({ endpoints: [etcd.endpoint] });
    const held = await claimNodeId({ coordinator: new EtcdCoordinator(client, [etcd.endpoint]), runtime: systemRuntime, cluster: 'demo', nodeId: undefined, maxNodeId: 1023, leaseTtlS: 10, info: info(9), logger: silent });
    const lib = createClient({ etcd: { endpoints: [etcd.endpoint] }, timeoutMs: 1000 });
    try {
      const error = (await lib.nextId().catch((e: unknown) => e)) as HailstoneError;
      expect(error.code).toBe('UNAVAILABLE');
      expect(error.message).toMatch(/no live servers in the fleet \(no claims in cluster default; claims are in clusters? (.*, )?demo \(1\)(, .*)?: give --cluster \(or cluster\) to ask there\)/);
    } finally {
      await lib.close();
      await held.release();
      client.close();
    }
  });

  it('a free claim passes over an id a fast-clocked predecessor left far ahead, and takes it only when no other is free', async () => {
    const client = connectEtcd({ endpoints: [etcd.endpoint] });
    const warnings: string[] = [];
    const logger: NodeLogger = { ...silent, warn: (_, m) => warnings.push(m) };
    try {
      await client.put(reservationKey('ahead', 0, WHOLE_NODE)).value(formatReservation(Date.now() + 60_000));
      const options = { coordinator: new EtcdCoordinator(client, [etcd.endpoint]), runtime: systemRuntime, cluster: 'ahead', nodeId: undefined, leaseTtlS: 10, logger, reservationLimit: () => Date.now() + 2000, random: () => 0 };
      // random 0: the lowest free id is tried first — id 0, which is 58 s ahead.
      const first = await claimNodeId({ ...options, maxNodeId: 1, info: info(1) });
      expect(first.nodeId).toBe(1);
      expect(warnings.join('\n')).toMatch(/passing over 1 free node id\(s\) \(0\) whose stored reservation lies past this clock plus its lead/);
      // Only id 0 is left: taken after all (the node will then wait or refuse, and say why).
      const second = await claimNodeId({ ...options, maxNodeId: 1, info: info(2) });
      expect(second.nodeId).toBe(0);
      const none = await claimNodeId({ ...options, maxNodeId: 1, info: info(3) }).catch((e: unknown) => e);
      expect((none as HailstoneError).code).toBe('NO_FREE_NODE_ID');
      await first.release();
      await second.release();
    } finally {
      client.close();
    }
  });
});
