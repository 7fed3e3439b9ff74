
// Fleet mode with real processes, a real etcd and real UDP: every id of every reply is
// collected and checked for duplicates while holders are killed, paused past their lease,
// cut off from etcd, and while etcd itself is killed. What the fleet simulator covers in
// virtual time (test/fleet.sim.test.ts: clock skews, holders paused past their lease,
// whole-system restarts, random schedules) is not run again here; these are the cases that
// need the real parts: the CLI and its exit codes, /proc's proof that a holder is gone,
// gRPC reconnecting, and a real etcd's leases across its own restart.

import { type Server as NetServer, Socket, createServer } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseReservation, reservationsPrefix } from '../src/fleet/etcd.js';
import { connectEtcd } from '../src/fleet/etcd-adapter.js';
import { decode } from '../src/index.js';
import { childPids, exited, runCli, waitFor } from './support/child.js';
import { TestEtcd, etcdInstalled, requireEtcd } from './support/etcd.js';
import { Load, type ServeProcess, duplicatesIn, spawnServe, startServe } from './support/serve-process.js';

const TTL = '3';

function nodeOf(s: { stdout: () => string }): number {
  const m = / node=(\d+) /.exec(s.stdout());
  if (m === null) throw new Error(`no ready line: ${s.stdout()}`);
  return Number(m[1]);
}

function fleetArgs(endpoint: string, cluster: string, extra: string[] = []): string[] {
  return ['--etcd', endpoint, '--cluster', cluster, '--port', '0', '--max-lead-ms', '300', '--lease-ttl-s', TTL, ...extra];
}

/** Log lines (pino JSON on stderr) whose message matches. */
function logTimes(stderr: string, message: RegExp): number[] {
  return stderr
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as { time: number; msg: string })
    .filter((l) => message.test(l.msg))
    .map((l) => l.time);
}

function maxOf(ids: bigint[]): bigint {
  return ids.reduce((a, b) => (b > a ? b : a), 0n);
}

function minOf(ids: bigint[]): bigint {
  return ids.reduce((a, b) => (b < a ? b : a), ids[0]!);
}

/** The metrics port a server with `--metrics 127.0.0.1:0` logged. */
async function metricsPortOf(s: Omit<ServeProcess, 'port'>): Promise<number> {
  return Number((await waitFor(() => /"metrics":"http:\/\/127\.0\.0\.1:(\d+)"/.exec(s.stderr()) ?? undefined, { what: 'the metrics port', child: s.child }))[1]);
}

/** One sample of a metric (without labels), or undefined where the server does not export it. */
async function metricOf(port: number, name: string): Promise<number | undefined> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  const m = new RegExp(`^${name} (\\S+)$`, 'm').exec(text);
  return m === null ? undefined : Number(m[1]);
}

/** Waits until the server's /healthz says it is claiming a node id (waiting for a held one, say). */
async function claimingSaid(metricsPort: number, s: Omit<ServeProcess, 'port'>): Promise<void> {
  await waitFor(async () => /claiming a node id/.test(((await (await fetch(`http://127.0.0.1:${metricsPort}/healthz`)).json()) as { reason?: string }).reason ?? '') || undefined, {
    what: '/healthz to say it is claiming',
    child: s.child,
  });
}

/** A fleet server started with `extra`, loaded with 1000 ids, then SIGKILLed: its node id and every id it gave. */
async function servedThenKilled(args: string[]): Promise<{ k: number; before: bigint[] }> {
  const s = await startServe(args);
  const load = new Load([`127.0.0.1:${s.port}`]);
  await load.more(1000);
  s.child.kill('SIGKILL');
  await s.done;
  return { k: nodeOf(s), before: await load.stop() };
}

async function stopServe(s: Omit<ServeProcess, 'port'>): Promise<void> {
  if (s.child.exitCode === null && s.child.signalCode === null) s.child.kill('SIGTERM');
  await s.done;
}

/** A TCP proxy in front of etcd that can be made to swallow everything (a partition). */
class BlackholeProxy {
  blackholed = false;
  private readonly sockets = new Set<Socket>();
  private constructor(
    private readonly server: NetServer,
    readonly port: number,
  ) {}

  static async start(targetPort: number): Promise<BlackholeProxy> {
    let proxy: BlackholeProxy | undefined;
    const server = createServer((client) => {
      const upstream = new Socket();
      upstream.connect(targetPort, '127.0.0.1');
      for (const s of [client, upstream]) {
        proxy!.sockets.add(s);
        s.on('error', () => undefined);
        s.on('close', () => proxy!.sockets.delete(s));
      }
      client.on('data', (d: Buffer) => {
        if (!proxy!.blackholed) upstream.write(d);
      });
      upstream.on('data', (d: Buffer) => {
        if (!proxy!.blackholed) client.write(d);
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
    proxy = new BlackholeProxy(server, (server.address() as { port: number }).port);
    return proxy;
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

requireEtcd();

describe.skipIf(!etcdInstalled)('fleet mode: real servers, real etcd, every id checked', () => {
  let etcd: TestEtcd;
  beforeAll(async () => {
    etcd = await TestEtcd.start();
  });
  afterAll(async () => {
    await etcd?.stop();
  });

  it('a. three servers without --node-id claim three distinct ids; a fourth asking for a live one gets NODE_ID_TAKEN', async () => {
    const servers = [];
    for (let i = 0; i < 3; i++) servers.push(await startServe(fleetArgs(etcd.endpoint, 'a')));
    const nodes = servers.map(nodeOf);
    expect(new Set(nodes).size).toBe(3);
    const load = new Load(servers.map((s) => `127.0.0.1:${s.port}`));
    await load.more(3000);
    const fourth = spawnServe(fleetArgs(etcd.endpoint, 'a', ['--node-id', String(nodes[0])]));
    expect(await fourth.done).toBe(1);
    expect(fourth.stderr()).toMatch(new RegExp(`hailstone: NODE_ID_TAKEN: node id ${nodes[0]} of cluster a is held by instance [0-9a-f]+ on .* \\(udp 127\\.0\\.0\\.1:${servers[0]!.port}`));
    const ids = await load.stop();
    expect(duplicatesIn(ids)).toEqual([]);
    expect(new Set(ids.map((id) => decode(id).nodeId))).toEqual(new Set(nodes));
    for (const s of servers) await stopServe(s);
  });

  it('c. the holder of node id k is SIGKILLed under load; a new instance given k on this machine proves it gone and claims k without waiting out its lease, issuing only above it', async () => {
    // A lease no start of the next instance outlasts, however loaded the machine: its claim
    // is still there when the next one asks, so only the proof can let it in at once.
    const old = await startServe(fleetArgs(etcd.endpoint, 'c', ['--lease-ttl-s', '60']));
    const k = nodeOf(old);
    const load = new Load([`127.0.0.1:${old.port}`]);
    await load.more(2000);
    old.child.kill('SIGKILL');
    await old.done;
    const before = await load.stop();
    const next = await startServe(fleetArgs(etcd.endpoint, 'c', ['--node-id', String(k), '--claim-wait-ms', '20000']));
    // Same boot and pid namespace, no process with the holder's pid and start time: gone.
    expect(next.stderr()).toMatch(new RegExp(`node id ${k} is held by instance .*, which no longer runs on this machine .*: taking the id without waiting out its lease`));
    expect(next.stderr()).not.toMatch(/waiting for its lease to end/);
    const load2 = new Load([`127.0.0.1:${next.port}`]);
    await load2.more(2000);
    const after = await load2.stop();
    expect(minOf(after)).toBeGreaterThan(maxOf(before));
    expect(duplicatesIn([...before, ...after])).toEqual([]);
    await stopServe(next);
  });

  it('c2. the holder SIGKILLed and restarted at once with its --node-id and no --claim-wait-ms: its dead predecessor never makes it exit; it serves', async () => {
    const old = await startServe(fleetArgs(etcd.endpoint, 'c2'));
    const k = nodeOf(old);
    old.child.kill('SIGKILL');
    await old.done;
    const again = await startServe(fleetArgs(etcd.endpoint, 'c2', ['--node-id', String(k)]));
    expect(nodeOf(again)).toBe(k);
    expect(again.stderr()).not.toMatch(/NODE_ID_TAKEN/);
    const load = new Load([`127.0.0.1:${again.port}`]);
    await load.more(500);
    expect(duplicatesIn(await load.stop())).toEqual([]);
    await stopServe(again);
  });

  it.each([['one process', []], ['--workers 2', ['--workers', '2']]] as const)(
    'e2. the same with the old holder given --node-id (%s): after SIGCONT it stops with NODE_ID_TAKEN, exit 1, once the claim wait is over; 0 duplicates',
    async (_, extra) => {
      const cluster = `e2${extra.length}`;
      const first = await startServe(fleetArgs(etcd.endpoint, cluster));
      const k = nodeOf(first);
      await stopServe(first);
      const old = await startServe(fleetArgs(etcd.endpoint, cluster, ['--node-id', String(k), '--claim-wait-ms', '1000', ...extra]));
      const loadOld = new Load([`127.0.0.1:${old.port}`]);
      await loadOld.more(1000);
      process.kill(-old.pid, 'SIGSTOP');
      const usurper = await startServe(fleetArgs(etcd.endpoint, cluster, ['--node-id', String(k), '--claim-wait-ms', '20000']));
      const loadNew = new Load([`127.0.0.1:${usurper.port}`]);
      await loadNew.more(1000);
      process.kill(-old.pid, 'SIGCONT');
      expect(await old.done).toBe(1);
      const lines = old.stderr().split('\n').filter((l) => l.startsWith('hailstone:'));
      expect(lines).toEqual([expect.stringMatching(new RegExp(`^hailstone: NODE_ID_TAKEN: node id ${k} was taken by another instance while this server was fenced .* this server stops\\. node id ${k} of cluster ${cluster} is held by instance`))]);
      expect(old.stderr()).not.toMatch(/\n\s+at /);
      await loadNew.more(500);
      const ids = [...(await loadOld.stop()), ...(await loadNew.stop())];
      expect(duplicatesIn(ids)).toEqual([]);
      await stopServe(usurper);
    },
  );

  it('h. a partition between a server and etcd: it fences itself before its lease could expire, and another instance takes its id', async () => {
    const proxy = await BlackholeProxy.start(etcd.clientPort);
    try {
      const cut = await startServe(fleetArgs(`http://127.0.0.1:${proxy.port}`, 'h'));
      const k = nodeOf(cut);
      const loadCut = new Load([`127.0.0.1:${cut.port}`]);
      await loadCut.more(1000);
      proxy.blackholed = true;
      const other = await startServe(fleetArgs(etcd.endpoint, 'h', ['--node-id', String(k), '--claim-wait-ms', '20000']));
      const fencedAt = logTimes(cut.stderr(), /^fenced: node id/)[0];
      const claimedAt = logTimes(other.stderr(), /^claimed node id/)[0];
      expect(fencedAt, 'the cut-off server fenced itself').toBeDefined();
      expect(fencedAt!).toBeLessThan(claimedAt!);
      const loadOther = new Load([`127.0.0.1:${other.port}`]);
      await loadOther.more(1000);
      const ids = [...(await loadCut.stop()), ...(await loadOther.stop())];
      expect(duplicatesIn(ids)).toEqual([]);
      await stopServe(cut);
      await stopServe(other);
    } finally {
      await proxy.close();
    }
  });

  it('i. --no-udp in fleet mode: a claim like any other that names no UDP address; ids over HTTP under the claimed id; fleet status says http only; UDP clients pass it over in silence', async () => {
    const s = spawnServe(fleetArgs(etcd.endpoint, 'i', ['--no-udp', '--http', '0']));
    let udp: ServeProcess | undefined;
    try {
      const k = Number((await waitFor(() => /hailstone serving over http only node=(\d+) workers=1\n/.exec(s.stdout()) ?? undefined, { what: 'the http-only ready line', child: s.child, timeoutMs: 60_000 }))[1]);
      const port = Number(/hailstone listening on http:\/\/127\.0\.0\.1:(\d+)/.exec(s.stdout())![1]);
      // Asked again on a 503 (a reservation being extended through etcd), honouring its retry-after.
      const r = await waitFor(
        async () => {
          const answer = await fetch(`http://127.0.0.1:${port}/v1/ids?count=50`);
          return answer.status === 200 ? answer : (await answer.arrayBuffer(), undefined);
        },
        { what: 'ids over HTTP', child: s.child, everyMs: 50 },
      );
      const ids = ((await r.json()) as { ids: string[] }).ids;
      expect(new Set(ids).size).toBe(50);
      expect(ids.every((id) => decode(id).nodeId === k)).toBe(true);
      const { claimKey } = await import('../src/fleet/etcd.js');
      const client = connectEtcd({ endpoints: [etcd.endpoint] });
      const claim = JSON.parse((await client.get(claimKey('i', k)).string()) ?? '{}') as { udp?: string; pid?: number };
      client.close();
      expect(claim).toMatchObject({ udp: '', pid: s.pid });
      const status = await runCli(['fleet', 'status', '--etcd', etcd.endpoint, '--cluster', 'i']);
      expect(status.code).toBe(0);
      expect(status.stdout).toMatch(new RegExp(`^${k}\\s.*none \\(http only\\)`, 'm'));
      // A UDP server beside it: the only one a UDP client finds, with no warning about the other claim.
      udp = await startServe(fleetArgs(etcd.endpoint, 'i'));
      const got = await runCli(['get', '-n', '3', '--etcd', etcd.endpoint, '--cluster', 'i', '--format', 'json']);
      expect(got.code, got.stderr).toBe(0);
      expect((JSON.parse(got.stdout) as string[]).map((id) => decode(id).nodeId)).toEqual([nodeOf(udp), nodeOf(udp), nodeOf(udp)]);
      expect(got.stderr).toBe('');
    } finally {
      if (udp !== undefined) await stopServe(udp);
      await stopServe(s);
    }
  });

  it('i2. --no-udp --workers 2: when the claim goes, every worker stops issuing at once (over HTTP too) and serves again under the new claim; every id distinct', async () => {
    const s = spawnServe(fleetArgs(etcd.endpoint, 'i2', ['--no-udp', '--http', '0', '--workers', '2']));
    try {
      const k = Number((await waitFor(() => /hailstone serving over http only node=(\d+) workers=2\n/.exec(s.stdout()) ?? undefined, { what: 'the http-only ready line', child: s.child, timeoutMs: 60_000 }))[1]);
      const port = Number(/hailstone listening on http:\/\/127\.0\.0\.1:(\d+)/.exec(s.stdout())![1]);
      // Ids over HTTP, a connection each (the primary hands them to the workers in turn), every one kept.
      const ids: bigint[] = [];
      let stop = false;
      const load = (async () => {
        for (let i = 0; i < 20_000 && !stop; i++) {
          const r = await fetch(`http://127.0.0.1:${port}/v1/ids?count=20`, { headers: { connection: 'close' } }).catch(() => undefined);
          if (r?.status === 200) ids.push(...((await r.json()) as { ids: string[] }).ids.map(BigInt));
          else await r?.arrayBuffer();
        }
      })();
      await waitFor(() => ids.length >= 2000 || undefined, { what: '2000 ids over HTTP', child: s.child });
      const { claimKey } = await import('../src/fleet/etcd.js');
      const client = connectEtcd({ endpoints: [etcd.endpoint] });
      await client.delete().key(claimKey('i2', k));
      client.close();
      await waitFor(() => /re-claimed/.test(s.stderr()), { what: 'the server to claim again', child: s.child });
      // Told by the primary, each worker's node stopped issuing: nothing answers from the old claim.
      const stopped = (worker: number) => s.stderr().split('\n').some((l) => l.includes('It stopped issuing ids') && l.includes(`"worker":${worker}`));
      await waitFor(() => (stopped(0) && stopped(1)) || undefined, { what: 'both workers to stop issuing', child: s.child });
      const afterReclaim = ids.length;
      await waitFor(() => new Set(ids.slice(afterReclaim).map((id) => decode(id, { workers: 2 }).worker)).size === 2 || undefined, {
        what: 'ids from both workers after the re-claim',
        child: s.child,
        timeoutMs: 30_000,
      });
      stop = true;
      await load;
      expect(duplicatesIn(ids)).toEqual([]);
    } finally {
      await stopServe(s);
    }
  });

  it('--workers 2 under one claim: one node id for both workers; when the claim goes, the same workers serve under the new claim on their sockets (never UNREACHABLE)', async () => {
    const s = await startServe(fleetArgs(etcd.endpoint, 'w', ['--workers', '2']));
    const k = nodeOf(s);
    const workers = childPids(s.pid);
    expect(workers).toHaveLength(2);
    // 16 sockets: the kernel spreads them over both workers' sockets by their source ports.
    const load = new Load([`127.0.0.1:${s.port}`], { concurrency: 16 });
    await load.more(2000);
    // Take the claim away (as an operator deleting the key would): a worker's write fails,
    // the primary fences and re-claims, the workers restart under the new claim.
    const { claimKey } = await import('../src/fleet/etcd.js');
    const client = connectEtcd({ endpoints: [etcd.endpoint] });
    await client.delete().key(claimKey('w', k));
    client.close();
    await waitFor(() => /re-claimed/.test(s.stderr()), { what: 'the server to claim again', child: s.child });
    const afterReclaim = load.ids.length;
    await load.more(2000);
    // Both workers serve again under the new claim: wait for that state, however slowly a
    // loaded machine lets the second one get its first renewal through etcd.
    const workersOf = (from: number) => new Set(load.ids.slice(from).map((id) => decode(id, { workers: 2 }).worker));
    await waitFor(() => workersOf(afterReclaim).size === 2, { what: 'ids from both workers after the re-claim', child: s.child, timeoutMs: 20_000 });
    const ids = await load.stop();
    expect(duplicatesIn(ids)).toEqual([]);
    expect(new Set(ids.map((id) => decode(id, { workers: 2 }).worker))).toEqual(new Set([0, 1]));
    // The port never went unanswered: the workers kept their sockets through the re-claim.
    expect(childPids(s.pid).sort()).toEqual(workers.sort());
    // One event, one fence: a worker's late report about the old claim does not cost the new one.
    expect(logTimes(s.stderr(), /^fenced: node id/)).toHaveLength(1);
    expect(load.refusals.get('UNREACHABLE') ?? 0).toBe(0);
    await stopServe(s);
  });
});

describe.skipIf(!etcdInstalled)('fleet mode: claims that have to wait', () => {
  let etcd: TestEtcd;
  beforeAll(async () => {
    etcd = await TestEtcd.start();
  });
  afterAll(async () => {
    await etcd?.stop();
  });

  it('--workers 2 waiting for a held id with a 3 s lease: when the holder stops it claims, serves and does not fence itself', async () => {
    // 3 s, not less: a 2 s lease leaves a 1 s window, which a loaded 2-core machine can stall past.
    const holder = await startServe(fleetArgs(etcd.endpoint, 'wait2', ['--lease-ttl-s', '3']));
    const k = nodeOf(holder);
    const waiting = spawnServe(fleetArgs(etcd.endpoint, 'wait2', ['--node-id', String(k), '--claim-wait-ms', '30000', '--lease-ttl-s', '3', '--workers', '2', '--metrics', '127.0.0.1:0']));
    // Waiting for the held id, as /healthz says (a loaded machine may still be loading the
    // command) — then for longer than its own 3 s lease, which it must keep alive meanwhile,
    // or the claim it makes would be fenced the moment it is made. The time is what is tested.
    const metrics = await metricsPortOf(waiting);
    await claimingSaid(metrics, waiting);
    await new Promise((r) => setTimeout(r, 4000));
    expect(waiting.stdout()).not.toMatch(/listening/);
    holder.child.kill('SIGTERM');
    expect(await holder.done).toBe(0);
    const m = await waitFor(() => /listening on udp:\/\/127\.0\.0\.1:(\d+) node=(\d+)/.exec(waiting.stdout()) ?? undefined, { what: 'the waiting server to serve', child: waiting.child });
    expect(Number(m[2])).toBe(k);
    const load = new Load([`127.0.0.1:${m[1]}`], { concurrency: 8 });
    await load.more(2000);
    // Serving for more than a TTL (4 more keepalives, each confirmed) with load on.
    const renewed = (await metricOf(metrics, 'hailstone_fleet_lease_renewals_total')) ?? 0;
    await waitFor(async () => ((await metricOf(metrics, 'hailstone_fleet_lease_renewals_total')) ?? 0) >= renewed + 4 || undefined, { what: '4 more keepalives while serving', child: waiting.child });
    await load.more(1000);
    expect(duplicatesIn(await load.stop())).toEqual([]);
    expect(waiting.stderr()).not.toMatch(/fenced/);
    expect(await metricOf(metrics, 'hailstone_fleet_fences_total')).toBe(0);
    await stopServe(waiting);
  });

  it('SIGTERM while --workers 2 waits for a held id: "hailstone stopped", exit 0', async () => {
    const holder = await startServe(fleetArgs(etcd.endpoint, 'waitterm'));
    const waiting = spawnServe(fleetArgs(etcd.endpoint, 'waitterm', ['--node-id', String(nodeOf(holder)), '--claim-wait-ms', '30000', '--workers', '2', '--metrics', '127.0.0.1:0']));
    // Waiting for the held id, as /healthz says (not a fixed sleep: a loaded machine may still be loading the command).
    await claimingSaid(await metricsPortOf(waiting), waiting);
    waiting.child.kill('SIGTERM');
    expect(await waiting.done).toBe(0);
    expect(waiting.stdout()).toContain('hailstone stopped');
    await stopServe(holder);
  });
});

describe.skipIf(!etcdInstalled)('fleet mode: etcd itself killed', () => {
  it('f. etcd killed for longer than the reservation under load: UNAVAILABLE (never a crash), serving again within 5 s of its return', async () => {
    const etcd = await TestEtcd.start();
    try {
      const s = await startServe(fleetArgs(etcd.endpoint, 'f', ['--lease-ttl-s', '10']));
      const load = new Load([`127.0.0.1:${s.port}`]);
      await load.more(1000);
      await etcd.kill();
      // Past the reservation (300 ms): the server refuses instead of issuing past what etcd acknowledged.
      await waitFor(() => (load.refusals.get('UNAVAILABLE') ?? 0) > 0 || undefined, { what: 'UNAVAILABLE answers', child: s.child });
      const refusedAt = load.refusals.get('UNAVAILABLE')!;
      await waitFor(() => load.refusals.get('UNAVAILABLE')! >= refusedAt + 50 || undefined, { what: 'refusals to go on while etcd is down', child: s.child });
      // Paused while etcd comes back, so the R etcd holds is still the last one it acknowledged
      // before it died: nothing issued up to now may lie past it.
      s.child.kill('SIGSTOP');
      const issuedWhileUp = load.ids.length;
      const back = Date.now();
      await etcd.run();
      const etcdClient = connectEtcd({ endpoints: [etcd.endpoint] });
      let acknowledged = -Infinity;
      try {
        const stored = await etcdClient.getAll().prefix(reservationsPrefix('f', nodeOf(s))).strings();
        for (const value of Object.values(stored)) acknowledged = Math.max(acknowledged, parseReservation(value)!);
      } finally {
        etcdClient.close();
        s.child.kill('SIGCONT');
      }
      const latest = load.ids.slice(0, issuedWhileUp).reduce((a, id) => Math.max(a, decode(id).timestamp), -Infinity);
      expect(latest, `an id issued at ${latest} lies past the acknowledged R ${acknowledged}`).toBeLessThanOrEqual(acknowledged);
      await load.more(500, 5000 + (Date.now() - back));
      const ids = await load.stop();
      expect(duplicatesIn(ids)).toEqual([]);
      expect(s.child.exitCode).toBeNull();
      await stopServe(s);
    } finally {
      await etcd.stop();
    }
  });

  it.each([
    ['on another machine (nothing proves the holder gone): it waits out the lease etcd restored, counted from etcd\'s return', 'host-b', /node id \d+ is held by .*: waiting for its lease to end/],
    ['on this machine (the holder provably gone): it takes the id once etcd answers', 'host-a', /which no longer runs on this machine/],
  ])('g2. whole-system restart with the servers up before etcd, a fixed --node-id restarted %s, and serves', async (_, secondHost, said) => {
    const etcd = await TestEtcd.start();
    try {
      const k = 7;
      const first = await startServe(fleetArgs(etcd.endpoint, 'g2', ['--node-id', String(k)]), { HAILSTONE_HOSTNAME: 'host-a' });
      const load = new Load([`127.0.0.1:${first.port}`]);
      await load.more(1000);
      first.child.kill('SIGKILL');
      await etcd.kill();
      await exited(first.child);
      const before = await load.stop();
      // Power returns; the server boots first and waits for etcd longer than its claim wait
      // (the lease TTL + 1 s): a wait counted from its own start would be spent by then.
      const startedAt = Date.now();
      const second = spawnServe(fleetArgs(etcd.endpoint, 'g2', ['--node-id', String(k), '--etcd-wait-ms', '60000']), { HAILSTONE_HOSTNAME: secondHost });
      await waitFor(() => (/etcd unreachable/.test(second.stderr()) && Date.now() - startedAt > (Number(TTL) + 2) * 1000) || undefined, { what: 'the server to wait for etcd past its claim wait', child: second.child });
      await etcd.run();
      const m = await waitFor(() => /listening on udp:\/\/127\.0\.0\.1:(\d+) node=(\d+)/.exec(second.stdout()) ?? undefined, { what: 'the restarted server to serve', child: second.child, timeoutMs: 30_000 });
      expect(Number(m[2])).toBe(k);
      expect(second.stderr()).toMatch(said);
      expect(second.stderr()).not.toMatch(/NODE_ID_TAKEN/);
      const load2 = new Load([`127.0.0.1:${m[1]}`]);
      await load2.more(1000);
      const after = await load2.stop();
      expect(duplicatesIn([...before, ...after])).toEqual([]);
      expect(minOf(after)).toBeGreaterThan(maxOf(before));
      await stopServe(second);
    } finally {
      await etcd.stop();
    }
  }, 90_000);
});
