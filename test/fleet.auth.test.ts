// Fleet mode against an etcd with authentication on, over TLS with client certificates,
// as the user docs/fleet.md says to make: a role that may read and write
// hailstone/<cluster>/ and nothing else. Claiming, reservations, fencing (the claim key
// deleted), discovery and an etcd restart (every auth token gone) all work with only that
// role — so every key hailstone touches is under the prefix — and the servers keep serving
// past etcd's auth token TTL; an idle client logs in again when its token was forgotten,
// `fleet status` lists the fleet, and a permission revoked under a server is named in
// /healthz.

import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Etcd3, Range } from 'etcd3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EtcdCoordinator, openEtcd } from '../src/fleet/etcd-adapter.js';
import { createClient } from '../src/index.js';
import { type FleetStatus, readFleetStatus } from '../src/fleet/status.js';
import { runCli, waitFor } from './support/child.js';
import { TestCa, opensslInstalled } from './support/certs.js';
import { TestEtcd, etcdInstalled, requireEtcd } from './support/etcd.js';
import { requirePrerequisite } from './support/prerequisite.js';
import { Load, duplicatesIn, spawnServe, startServe } from './support/serve-process.js';

/** `promise`, or a rejection naming what did not happen within `ms`. */
function bounded<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`waited ${ms} ms for ${what}`)), ms);
  });
  return Promise.race([promise, late]).finally(() => clearTimeout(timer));
}

requireEtcd();
requirePrerequisite(opensslInstalled, 'openssl, to make the certificates of the TLS tests');

const CLUSTER = 'prod';
const TOKEN_TTL_S = 2;

describe.skipIf(!etcdInstalled || !opensslInstalled)('fleet mode with etcd authentication and a role limited to hailstone/<cluster>/', () => {
  let ca: TestCa;
  let etcd: TestEtcd;
  let client: { cert: string; key: string };
  let dir: string;
  let admin: Etcd3;
  let access: string[];

  beforeAll(async () => {
    ca = TestCa.create();
    dir = mkdtempSync(join(tmpdir(), 'hailstone-auth-'));
    const server = ca.issue('etcd-server', { cn: 'etcd', san: ['IP:127.0.0.1'] });
    client = ca.issue('client', { cn: 'hailstone-client' });
    etcd = await TestEtcd.start({ tls: { ...server, clientCa: ca.cert, probe: { ca: ca.cert, ...client } }, authTokenTtlS: TOKEN_TTL_S });
    // What docs/fleet.md's etcdctl commands do, through the client library (no etcdctl needed).
    const setup = new Etcd3({ hosts: `127.0.0.1:${etcd.clientPort}`, credentials: { rootCertificate: ca.pem(), certChain: readFileSync(client.cert), privateKey: readFileSync(client.key) } });
    try {
      await setup.user('root').create('root-pw');
      await setup.role('root').create();
      await setup.user('root').addRole('root');
      await setup.role('hailstone').create();
      await setup.role('hailstone').grant({ permission: 'Readwrite', range: Range.prefix(`hailstone/${CLUSTER}/`) });
      await setup.role('hailstone').grant({ permission: 'Readwrite', range: Range.prefix('hailstone/status/') });
      // fleet status only reads.
      await setup.role('status-reader').create();
      await setup.role('status-reader').grant({ permission: 'Read', range: Range.prefix('hailstone/status/') });
      await setup.user('operator').create('operator-pw');
      await setup.user('operator').addRole('status-reader');
      await setup.role('revocable').create();
      await setup.role('revocable').grant({ permission: 'Readwrite', range: Range.prefix('hailstone/revoke/') });
      await setup.user('rv').create('rv-pw');
      await setup.user('rv').addRole('revocable');
      await setup.user('hs').create('hs-pw');
      await setup.user('hs').addRole('hailstone');
      // Clients only read the claims.
      await setup.role('hailstone-client').create();
      await setup.role('hailstone-client').grant({ permission: 'Read', range: Range.prefix(`hailstone/${CLUSTER}/claims/`) });
      await setup.user('reader').create('reader-pw');
      await setup.user('reader').addRole('hailstone-client');
      await setup.auth.authEnable();
    } finally {
      setup.close();
    }
    admin = new Etcd3({ hosts: `127.0.0.1:${etcd.clientPort}`, credentials: { rootCertificate: ca.pem(), certChain: readFileSync(client.cert), privateKey: readFileSync(client.key) }, auth: { username: 'root', password: 'root-pw' } });
    writeFileSync(join(dir, 'pw'), 'hs-pw\n', { mode: 0o600 });
    access = ['--etcd', etcd.endpoint, '--etcd-ca', ca.cert, '--etcd-cert', client.cert, '--etcd-key', client.key, '--cluster', CLUSTER];
  });

  afterAll(async () => {
    admin?.close();
    await etcd?.stop();
    ca?.remove();
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  });

  it('claims, stores reservations, is found by get --etcd, fences when its claim is deleted, outlives the token TTL and an etcd restart: 0 duplicates', async () => {
    const s = await startServe([...access, '--etcd-user', 'hs', '--etcd-password-file', join(dir, 'pw'), '--port', '0', '--max-lead-ms', '300', '--lease-ttl-s', '3']);
    const load = new Load([`127.0.0.1:${s.port}`]);
    try {
      await load.more(500);
      const claims = await admin.getAll().prefix(`hailstone/${CLUSTER}/claims/`).keys();
      expect(claims).toHaveLength(1);
      expect(await admin.getAll().prefix(`hailstone/${CLUSTER}/reservations/`).keys()).not.toHaveLength(0);
      // Discovery by a user that may only read the claims, its password from the environment.
      const got = await runCli(['get', '-n', '3', ...access, '--etcd-user', 'reader'], { HAILSTONE_ETCD_PASSWORD: 'reader-pw' });
      expect(got.stderr).toBe('');
      expect(got.stdout.trim().split('\n')).toHaveLength(3);
      // A password file others may read works, with a warning saying so.
      writeFileSync(join(dir, 'reader-pw'), 'reader-pw\n', { mode: 0o644 });
      chmodSync(join(dir, 'reader-pw'), 0o644);
      const open = await runCli(['get', ...access, '--etcd-user', 'reader', '--etcd-password-file', join(dir, 'reader-pw')]);
      expect(open.code).toBe(0);
      expect(open.stderr).toMatch(/^hailstone: warning: the etcd password file .*reader-pw is open to every user \(mode 644\): .*chmod 600/);
      expect(s.stderr()).not.toMatch(/password file/);
      // Fencing: the claim key deleted under it.
      await admin.delete().key(claims[0]!);
      await waitFor(() => /fenced: node id/.test(s.stderr()), { what: 'the server to fence itself', child: s.child });
      await waitFor(() => /re-claimed/.test(s.stderr()), { what: 'the server to claim again', child: s.child });
      await load.more(500);
      // Past the token TTL, twice over, while serving.
      const until = Date.now() + 2 * TOKEN_TTL_S * 1000 + 500;
      await waitFor(() => Date.now() > until, { what: 'two token TTLs to pass', everyMs: 100 });
      await load.more(500);
      // An etcd restart forgets every token: the server logs in again by itself.
      await etcd.kill();
      await etcd.run();
      await load.more(1000, 30_000);
      expect(s.stderr()).not.toMatch(/permission denied|PERMISSION|auth/i);
      expect(duplicatesIn(await load.stop())).toEqual([]);
    } finally {
      await load.stop();
      s.child.kill('SIGTERM');
      await s.done;
    }
  }, 60_000);

  it('fleet status lists the holder, its lease and its reservations, then the dead holder\'s reservations as unclaimed', async () => {
    const s = await startServe([...access, '--etcd-user', 'hs', '--etcd-password-file', join(dir, 'pw'), '--port', '0', '--max-lead-ms', '300', '--lease-ttl-s', '3', '--cluster', 'status']);
    // As an operator whose role may only read the cluster's keys.
    const status = async (format: string) => runCli(['fleet', 'status', ...access, '--etcd-user', 'operator', '--cluster', 'status', '--format', format], { HAILSTONE_ETCD_PASSWORD: 'operator-pw' });
    const node = Number(/ node=(\d+) /.exec(s.stdout())![1]);
    const json = await status('json');
    expect(json.stderr).toBe('');
    expect(json.code).toBe(0);
    const live = JSON.parse(json.stdout) as FleetStatus;
    expect(live.nodes).toHaveLength(1);
    expect(live.nodes[0]).toMatchObject({ nodeId: node, holder: { udp: `127.0.0.1:${s.port}`, pid: s.pid }, leaseTtlS: 3 });
    expect(live.nodes[0]!.leaseLeftS).toBeGreaterThan(0);
    expect(live.nodes[0]!.stripes).toEqual([expect.objectContaining({ stripe: '0-1' })]);
    // The reservation runs ahead of the clock, by at most the lead.
    expect(live.nodes[0]!.stripes[0]!.aheadMs).toBeLessThanOrEqual(300);
    expect(live.freeIds).toBe(1023);
    expect(live.unclaimed).toEqual([]);
    const text = await status('table');
    expect(text.stdout).toMatch(new RegExp(`^${node}\\s+\\S+\\s+127\\.0\\.0\\.1:${s.port}\\s+${s.pid}\\s`, 'm'));
    s.child.kill('SIGKILL');
    await s.done;
    // Once the lease runs out the claim is gone; its reservation stays.
    const etcdOptions = { endpoints: [etcd.endpoint], ca: ca.cert, cert: client.cert, key: client.key, username: 'hs', password: 'hs-pw' };
    const conn = openEtcd(etcdOptions);
    try {
      const dead = await waitFor(async () => {
        const st = await readFleetStatus(new EtcdCoordinator(conn.etcd, conn.endpoints), 'status', { now: Date.now });
        return st.nodes.length === 0 ? st : undefined;
      }, { what: 'the dead holder\'s claim to go', everyMs: 200 });
      expect(dead.unclaimed).toEqual([{ nodeId: node, stripes: [expect.objectContaining({ stripe: '0-1' })] }]);
      expect(dead.freeIds).toBe(1024);
    } finally {
      conn.etcd.close();
    }
    expect((await status('table')).stdout).toMatch(new RegExp(`no live claim.*\\n.*\\n${node}\\s+0-1 `, 's'));
  }, 60_000);

  it('a permission revoked while serving: the node stops issuing, /healthz says etcd refuses and why; granted again, it claims again and serves', async () => {
    const s = await startServe([...access, '--etcd-user', 'rv', '--cluster', 'revoke', '--port', '0', '--max-lead-ms', '300', '--lease-ttl-s', '3', '--metrics', '127.0.0.1:0'], {
      HAILSTONE_ETCD_PASSWORD: 'rv-pw',
    });
    const metrics = Number((await waitFor(() => /"metrics":"http:\/\/127\.0\.0\.1:(\d+)"/.exec(s.stderr()) ?? undefined, { what: 'the metrics port', child: s.child }))[1]);
    const reason = async () => ((await (await fetch(`http://127.0.0.1:${metrics}/healthz`)).json()) as { reason?: string }).reason ?? '';
    const load = new Load([`127.0.0.1:${s.port}`]);
    try {
      await load.more(300);
      const range = Range.prefix('hailstone/revoke/');
      await admin.role('revocable').revoke({ permission: 'Readwrite', range });
      await waitFor(async () => /coordinator \(etcd\) refuses: etcd says permission denied: the etcd user "rv" needs readwrite on the prefix hailstone\/revoke\//.test(await reason()), {
        what: '/healthz to say etcd refuses',
        child: s.child,
        everyMs: 100,
      });
      await waitFor(() => /"msg":"[^"]*refuses: etcd says permission denied/.test(s.stderr()), { what: 'the log to say etcd refuses', child: s.child });
      await admin.role('revocable').grant({ permission: 'Readwrite', range });
      await waitFor(async () => (await reason()) === '' || undefined, { what: '/healthz to be healthy again', child: s.child, everyMs: 100 });
      await load.more(300);
      expect(duplicatesIn(await load.stop())).toEqual([]);
    } finally {
      await load.stop();
      s.child.kill('SIGTERM');
      await s.done;
    }
  });

  it("a client idle past etcd's auth token TTL logs in again by itself on its next request", async () => {
    const conn = openEtcd({ endpoints: [etcd.endpoint], ca: ca.cert, cert: client.cert, key: client.key, username: 'hs', password: 'hs-pw' });
    // Counts the logins the client drops because etcd said the token is invalid (etcd3's insides).
    const authenticator = (conn.etcd as unknown as { pool: { authenticator: { invalidateMetadata: () => void } } }).pool.authenticator;
    let dropped = 0;
    const invalidate = authenticator.invalidateMetadata.bind(authenticator);
    authenticator.invalidateMetadata = () => {
      dropped++;
      invalidate();
    };
    try {
      await readFleetStatus(new EtcdCoordinator(conn.etcd, conn.endpoints), CLUSTER, { now: Date.now });
      // Idle: the token is forgotten after TOKEN_TTL_S unused.
      const until = Date.now() + TOKEN_TTL_S * 1000 + 1500;
      await waitFor(() => Date.now() > until, { what: 'the token TTL to pass', everyMs: 100 });
      expect((await readFleetStatus(new EtcdCoordinator(conn.etcd, conn.endpoints), CLUSTER, { now: Date.now })).cluster).toBe(CLUSTER);
      // The token had expired (the test would prove nothing otherwise), and the client logged in again.
      expect(dropped).toBeGreaterThan(0);
    } finally {
      conn.etcd.close();
    }
  });

  it('discovery follows the fleet across an etcd restart (every token forgotten): a server started afterwards is found', async () => {
    // Each step is bounded, and the bounds add up to less than the test's own: a run that
    // stops says which step it was, how long each took, and the server's log.
    const took: string[] = [];
    const step = async <T>(name: string, work: () => Promise<T>): Promise<T> => {
      const started = Date.now();
      try {
        return await work();
      } finally {
        took.push(`${name} ${Date.now() - started} ms`);
      }
    };
    const lib = createClient({ etcd: { endpoints: [etcd.endpoint], ca: ca.cert, cert: client.cert, key: client.key, username: 'reader', password: 'reader-pw' }, cluster: CLUSTER, deadlineMs: 2000 });
    try {
      await step('no servers yet', () => expect(lib.nextIds(1)).rejects.toThrow(/no live servers/));
      await step('etcd restart', async () => {
        await etcd.kill();
        await etcd.run(); // bounded: 20 s
      });
      const s = spawnServe([...access, '--etcd-user', 'hs', '--etcd-password-file', join(dir, 'pw'), '--port', '0', '--max-lead-ms', '300', '--lease-ttl-s', '3']);
      try {
        const where = (error: unknown) => new Error(`${(error as Error).message} (steps: ${took.join(', ')})\nserver log:\n${s.stderr().slice(-3000)}`);
        await step('server ready', () => waitFor(() => / node=\d+ /.test(s.stdout()) || undefined, { what: 'the server to be ready', child: s.child, stderr: { text: s.stderr }, timeoutMs: 45_000 })).catch((error: unknown) => {
          throw where(error);
        });
        let last: unknown;
        const ids = await step('client finds it', () =>
          waitFor(async () => lib.nextIds(5).catch((error: unknown) => ((last = error), undefined)), { what: 'the client to find the new server', everyMs: 200, timeoutMs: 20_000 }),
        ).catch((error: unknown) => {
          throw where(new Error(`${(error as Error).message}; the client's last error: ${String(last)}`));
        });
        expect(ids).toHaveLength(5);
      } finally {
        s.child.kill('SIGTERM');
        await step('server stops', () => bounded(s.done, 10_000, `the server to exit after SIGTERM (steps: ${took.join(', ')})`));
      }
    } finally {
      await step('client closes', () => bounded(lib.close(), 10_000, `the client to close (steps: ${took.join(', ')})`));
    }
    // An etcd restart with TLS and auth, then a server's first start, on a loaded machine: the
    // steps' bounds (20 + 45 + 20 + 10 + 10 s) come first.
  }, 120_000);

  it('fleet status: exit 1 with COORDINATOR_UNAVAILABLE when etcd does not answer', async () => {
    const r = await runCli(['fleet', 'status', '--etcd', 'http://127.0.0.1:1']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^hailstone: COORDINATOR_UNAVAILABLE: etcd at 127\.0\.0\.1:1 did not answer .*\n$/);
  });
});
