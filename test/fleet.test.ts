
// Fleet mode in process, against a real etcd: claims, the reservation rule (written only
// under the claim, never lowered), fencing when the claim goes, discovery by clients.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HailstoneError, createClient, serve } from '../src/index.js';
import { type Claim, claimNodeId } from '../src/fleet/claim.js';
import { LeaseGoneError, keepLeaseAlive } from '../src/fleet/lease-session.js';
import { claimKey, formatReservation, reservationKey } from '../src/fleet/etcd.js';
import { EtcdCoordinator, classify, connectEtcd } from '../src/fleet/etcd-adapter.js';
import { coordinatorUnreachable, leaseGone } from '../src/fleet/coordinator.js';
import { systemRuntime } from '../src/system-runtime.js';
import { EtcdStore, claimRefOf } from '../src/fleet/etcd-store.js';
import type { NodeLogger } from '../src/logger.js';
import { waitFor } from './support/child.js';
import { TestEtcd, etcdInstalled, requireEtcd } from './support/etcd.js';
import { issue } from './support/issue.js';
import { silent } from './support/logger.js';

const info = (i: number) => ({ instance: `t${i}`, host: 'test', udp: `127.0.0.1:${10000 + i}`, pid: process.pid, version: 'test', startedAt: new Date().toISOString() });

requireEtcd();

describe.skipIf(!etcdInstalled)('fleet mode in process (real etcd)', () => {
  let etcd: TestEtcd;
  beforeAll(async () => {
    etcd = await TestEtcd.start();
  });
  afterAll(async () => {
    await etcd?.stop();
  });

  it('1024 claimants get 1024 distinct node ids (the last 24 racing for them); the next gets NO_FREE_NODE_ID', async () => {
    const client = connectEtcd({ endpoints: [etcd.endpoint] });
    const claims: Claim[] = [];
    const claim = (i: number, nodeId: number | undefined) =>
      claimNodeId({ coordinator: new EtcdCoordinator(client, ['etcd']), runtime: systemRuntime, cluster: 'b', nodeId, maxNodeId: 1023, leaseTtlS: 60, info: info(i), logger: silent });
    try {
      for (let start = 0; start < 1000; start += 50) {
        claims.push(...(await Promise.all(Array.from({ length: 50 }, (_, j) => claim(start + j, start + j)))));
      }
      // The rest without a node id, all at once: they race for the last 24 free ids.
      claims.push(...(await Promise.all(Array.from({ length: 24 }, (_, j) => claim(1000 + j, undefined)))));
      const ids = claims.map((c) => c.nodeId);
      expect(new Set(ids).size).toBe(1024);
      expect(Math.min(...ids)).toBe(0);
      expect(Math.max(...ids)).toBe(1023);
      const refused = await claim(2000, undefined).catch((e: unknown) => e);
      expect(refused).toBeInstanceOf(HailstoneError);
      expect((refused as HailstoneError).code).toBe('NO_FREE_NODE_ID');
      const taken = await claim(2001, 7).catch((e: unknown) => e);
      expect((taken as HailstoneError).code).toBe('NODE_ID_TAKEN');
      expect((taken as HailstoneError).message).toMatch(/node id 7 of cluster b is held by instance t7 on test \(udp 127\.0\.0\.1:10007/);
    } finally {
      await Promise.all(claims.map((c) => c.release()));
      client.close();
    }
  }, 60_000);

  it('a claim key deleted under a running server: its next reservation write is refused, it stops issuing at once and claims again', async () => {
    const client = connectEtcd({ endpoints: [etcd.endpoint] });
    const errors: string[] = [];
    const logger: NodeLogger = { ...silent, error: (_, m) => errors.push(m), warn: (_, m) => errors.push(m) };
    const server = await serve({ etcd: { endpoints: [etcd.endpoint] }, cluster: 'del', port: 0, maxLeadMs: 100, reservationMs: 50, logger });
    try {
      const before = server.node;
      const first = await issue(before);
      const key = claimKey('del', before.status().nodeId);
      await client.delete().key(key);
      // Within a renewal (every 25 ms here) the write's compare fails.
      const reason = await waitFor(() => before.status().ownershipLost, { what: 'the node to stop' });
      expect(reason).toMatch(/the reservation write to .* was refused: the claim .* is gone/);
      expect(() => before.nextId()).toThrow(HailstoneError);
      await waitFor(() => server.node !== before && server.node.status().healthy, { what: 'a new claim and node' });
      const after = await issue(server.node);
      expect(after).toBeGreaterThan(first);
      expect(server.fleetStats()).toMatchObject({ claims: 2, fences: 1 });
      expect(errors.join('\n')).toMatch(/fenced: node id \d+ stopped issuing/);
    } finally {
      await server.close();
      client.close();
    }
  });

  it('reservations are written only under the claim and never lowered: another writer of the key fences the node', async () => {
    const client = connectEtcd({ endpoints: [etcd.endpoint] });
    const server = await serve({ etcd: { endpoints: [etcd.endpoint] }, cluster: 'rw', port: 0, maxLeadMs: 100, reservationMs: 50, logger: silent });
    try {
      const node = server.node;
      await issue(node);
      const key = reservationKey('rw', node.status().nodeId, { index: 0, count: 1 });
      const stored = Number(await client.get(key).string());
      expect(stored).toBeGreaterThanOrEqual(node.status().reservedUntil - 1);
      // Someone else writes the reservation (an operator, a restored backup): the holder's
      // next write compares its own mod revision and fails — it never overwrites blindly.
      await client.put(key).value(formatReservation(1));
      await waitFor(() => node.status().ownershipLost, { what: 'the node to stop' });
    } finally {
      await server.close();
      client.close();
    }
  });

  it('with a state dir too: its file is an extra floor — etcd restored without the reservation still resumes above it', async () => {
    const { mkdtempSync, rmSync, existsSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const { join } = await import('node:path');
    const stateDir = mkdtempSync(join(tmpdir(), 'hailstone-fleet-floor-'));
    const client = connectEtcd({ endpoints: [etcd.endpoint] });
    try {
      const opts = { etcd: { endpoints: [etcd.endpoint] }, cluster: 'floor', nodeId: 2, stateDir, port: 0, maxLeadMs: 100, reservationMs: 50, logger: silent };
      // The first holder ran 5 s ahead of the clock.
      const first = await serve({ ...opts, clockSkewMs: 5000 });
      const ahead = await issue(first.node);
      expect(existsSync(join(stateDir, 'node-2.w0-1.state'))).toBe(true);
      await first.close();
      // etcd "restored from an old backup": the reservation is gone. Without the file, the
      // next holder would wait one lead window and issue ids the first one issued.
      await client.delete().prefix('hailstone/floor/reservations/');
      const refused = await serve(opts).catch((e: unknown) => e);
      expect(refused).toMatchObject({ code: 'CLOCK_FAR_BEHIND', message: expect.stringMatching(/state file .*node-2\.w0-1\.state/) });
      // Allowed to wait, it resumes above the file's reservation.
      const second = await serve({ ...opts, maxStartupWaitMs: 10_000 });
      expect(await issue(second.node)).toBeGreaterThan(ahead);
      await second.close();
    } finally {
      client.close();
      rmSync(stateDir, { recursive: true, force: true });
    }
  });

  it('clients find the servers in etcd and follow them as they come and go', async () => {
    const a = await serve({ etcd: { endpoints: [etcd.endpoint] }, cluster: 'disc', port: 0, maxLeadMs: 100, logger: silent });
    const client = createClient({ etcd: { endpoints: [etcd.endpoint] }, cluster: 'disc' });
    try {
      const first = await client.nextIds(10);
      expect(first).toHaveLength(10);
      const b = await serve({ etcd: { endpoints: [etcd.endpoint] }, cluster: 'disc', port: 0, maxLeadMs: 100, logger: silent });
      await a.close(); // revokes its lease: its claim disappears, and the watch tells the client
      const ids = await client.nextIds(500);
      expect(new Set([...first, ...ids]).size).toBe(510);
      expect(ids.every((id) => Number((id >> 12n) & 1023n) === b.node.status().nodeId)).toBe(true);
      await b.close();
    } finally {
      await client.close();
    }
  });

  it('--workers: a worker\'s report about an earlier claim does not cost the current one; a report about the current one fences it', async () => {
    const { FleetMember } = await import('../src/fleet/member.js');
    const member = new FleetMember({ etcd: { endpoints: [etcd.endpoint] }, cluster: 'stale-report', leaseTtlS: 30 }, { logger: silent, udp: () => '127.0.0.1:1', claimOnly: true });
    try {
      await member.start();
      const current = member.claimRef()!;
      member.loseClaim('a write under an earlier claim was refused', String(BigInt(current.createRevision) - 1n));
      expect(member.stats().fences).toBe(0);
      expect(member.claimRef()!.createRevision).toBe(current.createRevision);
      member.loseClaim('a write under the current claim was refused', current.createRevision);
      expect(member.stats().fences).toBe(1);
    } finally {
      await member.close();
    }
  });

  it('a claim waiting out its backoff for an etcd that does not answer ends at once with CLOSED when its signal is aborted (close() is prompt)', async () => {
    const down = await TestEtcd.start();
    await down.kill();
    const client = connectEtcd({ endpoints: [down.endpoint] });
    const closer = new AbortController();
    let failures = 0;
    let abortedAt = 0;
    try {
      const claiming = claimNodeId({
        coordinator: new EtcdCoordinator(client, ['etcd']), runtime: systemRuntime,
        cluster: 'closing',
        nodeId: undefined,
        maxNodeId: 1023,
        coordinatorWaitMs: 60_000,
        info: info(9),
        logger: silent,
        signal: closer.signal,
        // Told right before each backoff wait: after the 6th failure the wait is 0.8–2.4 s.
        onUnreachable: () => {
          if (++failures === 6) {
            abortedAt = Date.now();
            closer.abort();
          }
        },
      }).catch((e: unknown) => e);
      expect(await claiming).toMatchObject({ code: 'CLOSED' });
      expect(Date.now() - abortedAt).toBeLessThan(300);
    } finally {
      client.close();
      await down.stop();
    }
  });

  describe('etcd errors, classified by type against a real etcd', () => {
    it('a revoked lease: EtcdLeaseInvalidError is "lease gone", not "unreachable"; a keepalive says LeaseGoneError', async () => {
      const client = connectEtcd({ endpoints: [etcd.endpoint] });
      try {
        const lease = client.lease(30, { autoKeepAlive: false });
        lease.on('lost', () => undefined);
        await lease.grant();
        await lease.revoke();
        const raw = await client.put('hailstone/errors/x').value('1').lease(await lease.grant()).exec().catch((e: unknown) => e);
        expect(leaseGone(classify(raw))).toBe(true);
        expect(coordinatorUnreachable(classify(raw))).toBe(false);
        expect((raw as Error).name).toBe('Error'); // why a name test never matched
        const coordinator = new EtcdCoordinator(client, [etcd.endpoint]);
        const again = await coordinator.grantLease(30);
        await client.leaseClient.leaseRevoke({ ID: again });
        await expect(keepLeaseAlive(coordinator, systemRuntime, again, 1000, () => undefined)).rejects.toBeInstanceOf(LeaseGoneError);
      } finally {
        client.close();
      }
    });

    it('a held claim whose lease is revoked: the holder fences at once on its next keepalive, saying the lease is gone', async () => {
      const client = connectEtcd({ endpoints: [etcd.endpoint] });
      try {
        // TTL 3 s: keepalives every ~670 ms, the fence timer at 2 s — the keepalive must be first.
        const claim = await claimNodeId({ coordinator: new EtcdCoordinator(client, ['etcd']), runtime: systemRuntime, cluster: 'revoked', nodeId: undefined, maxNodeId: 1023, leaseTtlS: 3, info: info(1), logger: silent });
        const revoker = connectEtcd({ endpoints: [etcd.endpoint] });
        await (revoker as unknown as { leaseClient: { leaseRevoke(req: { ID: string }): Promise<unknown> } }).leaseClient.leaseRevoke({ ID: claim.leaseId });
        revoker.close();
        await waitFor(() => claim.lost, { what: 'the claim to be lost', timeoutMs: 5000 });
        expect(claim.lost).toMatch(/etcd says the lease is gone/);
      } finally {
        client.close();
      }
    });

    it('etcd down: the adapter says "unreachable"; a message-only gRPC error too; an etcd error is not', async () => {
      const down = await TestEtcd.start();
      const client = connectEtcd({ endpoints: [down.endpoint] });
      try {
        await client.put('hailstone/errors/y').value('1');
        await down.kill();
        const error = await client.get('hailstone/errors/y').exec().catch((e: unknown) => e);
        expect(error).toBeInstanceOf(Error);
        expect(coordinatorUnreachable(classify(error))).toBe(true);
        // Errors raised before the client could type them: only the message tells.
        expect(coordinatorUnreachable(classify(new Error('14 UNAVAILABLE: No connection established. Last error: connect ECONNREFUSED 127.0.0.1:2379')))).toBe(true);
        expect(coordinatorUnreachable(classify(new Error('etcdserver: permission denied')))).toBe(false);
        expect(coordinatorUnreachable(classify('not an error'))).toBe(false);
      } finally {
        client.close();
        await down.stop();
      }
    });

    it('a damaged reservation key: STATE_CORRUPT naming the key and what to put there, not INTERNAL', async () => {
      const client = connectEtcd({ endpoints: [etcd.endpoint] });
      try {
        const claim = await claimNodeId({ coordinator: new EtcdCoordinator(client, ['etcd']), runtime: systemRuntime, cluster: 'damaged', nodeId: 7, maxNodeId: 1023, leaseTtlS: 30, info: info(2), logger: silent });
        await client.put(reservationKey('damaged', 7, { index: 0, count: 1 })).value('not a number');
        const store = new EtcdStore({ coordinator: new EtcdCoordinator(client, ['etcd']), runtime: systemRuntime, cluster: 'damaged', claim: claimRefOf(claim), worker: { index: 0, count: 1 } as never });
        const error = await store.open().catch((e: unknown) => e);
        expect(error).toBeInstanceOf(HailstoneError);
        expect(error).toMatchObject({ code: 'STATE_CORRUPT', message: expect.stringMatching(/etcd key hailstone\/damaged\/reservations\/7\/0-1 holds "not a number", not a reservation.*16 digits/) });
        await claim.release();
      } finally {
        client.close();
      }
    });
  });
});
