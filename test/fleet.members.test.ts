// Fleet servers against a real 3-member etcd cluster while one member fails: killed (a
// follower, the leader), paused with SIGSTOP (a hang, which is worse than a crash: its TCP
// connections stay open and nothing answers on them), the very member a server's
// connections go to, and a `--workers 2` server started while a member is down.
//
// etcd with one member of three gone still has a quorum and serves every request, and
// here elects a new leader within about a second; a server that was given all the
// endpoints must keep issuing ids through the other two. So every case asserts, besides 0
// duplicates across all servers, that every server process (and every worker) is still
// alive and that no server went more than 2 s without an OK reply — with the default
// lease (10 s), lead (2 s) and reservation (1 s), as production runs them. The measured
// gaps, fences and worker exits are printed per case, to be quoted.
//
// HAILSTONE_MEMBER_PAUSE_MS sets how long a member stays paused (default 5 s to keep
// `npm test` short; 30000 for the long version — longer than the lease's valid window).

import { once } from 'node:events';
import { connect } from 'node:net';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { Availability, type ServerAvailability } from './support/availability.js';
import { childPids, sleep } from './support/child.js';
import { EtcdCluster } from './support/etcd-cluster.js';
import { etcdInstalled, requireEtcd } from './support/etcd.js';
import { type ServeProcess, duplicatesIn, startServe } from './support/serve-process.js';

const PAUSE_MS = Number(process.env.HAILSTONE_MEMBER_PAUSE_MS ?? 5000);
/** How long a killed member stays down before it is restarted. */
const DOWN_MS = 2500;
/** Load before the failure, and after the member is back. */
const STEADY_MS = 1000;
const AFTER_MS = 2000;
const MAX_GAP_MS = 2000;

requireEtcd();

describe.skipIf(!etcdInstalled)('fleet mode against a 3-member etcd cluster: one member fails, the servers keep issuing', () => {
  let etcd: EtcdCluster;
  beforeAll(async () => {
    etcd = await EtcdCluster.start();
  }, 60_000);
  afterAll(async () => {
    await etcd?.stop();
  });
  // Each case starts from a whole cluster, even after a case that failed with a member down or paused.
  beforeEach(async () => {
    await etcd.heal();
  }, 30_000);
  // A case that failed half-way must not leave its load running into the next one.
  let current: Availability | undefined;
  afterEach(async () => {
    await current?.stop();
    current = undefined;
  });

  /** Default lease TTL, lead and reservation: the gaps are measured with what production runs. */
  function serve(extra: string[] = []): Promise<ServeProcess> {
    return startServe(['--etcd', etcd.endpoints, '--cluster', 'members', '--port', '0', ...extra]);
  }

  /** Starts the servers (in parallel), puts load on each and waits until each answers. */
  async function fleet(specs: Record<string, string[]>): Promise<{ servers: Record<string, ServeProcess>; load: Availability }> {
    const names = Object.keys(specs);
    const started = await Promise.all(names.map((n) => serve(specs[n])));
    const servers = Object.fromEntries(names.map((n, i) => [n, started[i]!]));
    const load = (current = new Availability({}, { maxMs: 60_000 + PAUSE_MS }));
    // More sockets for a --workers server: the kernel spreads them over its workers by source port.
    for (const n of names) load.add(n, `127.0.0.1:${servers[n]!.port}`, { concurrency: specs[n]!.includes('--workers') ? 4 : 2 });
    await load.ready();
    return { servers, load };
  }

  /** The worker processes of each --workers server, as they were before the failure. */
  function workersOf(servers: Record<string, ServeProcess>): Map<string, number[]> {
    return new Map(Object.entries(servers).map(([name, s]) => [name, childPids(s.pid)]));
  }

  /** What a server logged at warn level or above (pino JSON on stderr), one message per line, shortened. */
  function troubles(s: ServeProcess): string[] {
    return s
      .stderr()
      .split('\n')
      .flatMap((l) => {
        try {
          const j = JSON.parse(l) as { level: number; msg: string };
          return j.level >= 40 ? [j.msg.slice(0, 200)] : [];
        } catch {
          return l.trim() === '' ? [] : [l.slice(0, 200)];
        }
      });
  }

  /**
   * Stops the load, prints the gaps, and checks: 0 duplicates across all servers, every
   * server alive, every server's longest gap without an OK reply within MAX_GAP_MS.
   */
  async function verdict(title: string, servers: Record<string, ServeProcess>, load: Availability, termBefore: number, workers = new Map<string, number[]>()): Promise<void> {
    const report: ServerAvailability[] = await load.stop();
    const elections = (await etcd.term()) - termBefore;
    const lines = [`[members] ${title}: ${elections} etcd election(s) during the case`, load.describe()];
    for (const [name, s] of Object.entries(servers)) {
      const t = troubles(s);
      const alive = s.child.exitCode === null && s.child.signalCode === null;
      const lost = (workers.get(name) ?? []).filter((w) => !childPids(s.pid).includes(w));
      const fences = t.filter((m) => m.startsWith('fenced:')).length;
      const workerExits = t.filter((m) => /^worker \d+ exited/.test(m)).length;
      lines.push(
        `${name}: ${alive ? 'alive' : `EXITED (${s.child.exitCode ?? s.child.signalCode})`}, ${fences} fence(s), ${workerExits} worker exit(s)${lost.length === 0 ? '' : ` (pids ${lost.join(', ')} gone)`}, ` +
          `${t.length} warn/error log line(s)${t.length === 0 ? '' : `:\n    ${[...new Set(t)].slice(0, 12).join('\n    ')}`}`,
      );
    }
    console.log(lines.join('\n'));
    const all = report.flatMap((r) => r.ids);
    expect(duplicatesIn(all), 'duplicate ids across the servers').toEqual([]);
    for (const [name, s] of Object.entries(servers)) {
      expect.soft(s.child.exitCode === null && s.child.signalCode === null, `${name} is alive at the end\n${s.stderr().slice(-2000)}`).toBe(true);
      // A worker that died and was restarted is a server process that did not stay up.
      const now = childPids(s.pid);
      expect.soft((workers.get(name) ?? []).filter((w) => !now.includes(w)), `${name}: workers that exited during the case`).toEqual([]);
    }
    const faultAt = load.firstMarkMs() ?? 0;
    for (const r of report) {
      expect.soft(r.okReplies, `${r.name} answered at all`).toBeGreaterThan(0);
      // Every gap from the fault on is the fault's: at most MAX_GAP_MS. A gap that began
      // before it is the machine's: on a loaded machine etcd's own writes can take longer
      // than the lead covers, and the server then refuses (fail closed) and says so
      // ("... more than a 2000 ms lead allows"). Such a gap is printed, not failed — but only
      // when its server said that, and only its part before the fault.
      const server = servers[r.name];
      const tooSlowForLead = server !== undefined && troubles(server).some((m) => m.includes('lead allows'));
      for (const [from, to] of r.gaps) {
        const fromFault = to - Math.max(from, faultAt);
        if (from < faultAt && tooSlowForLead) {
          if (to - from > MAX_GAP_MS) console.log(`[members] ${r.name}: a ${to - from} ms gap (${from}..${to} ms) before the fault, while its etcd writes were slower than its lead covers`);
          expect.soft(fromFault, `${r.name}: time without an OK reply after the fault (ms), ${from}..${to} ms into the case (fault at ${faultAt})`).toBeLessThanOrEqual(MAX_GAP_MS);
        } else {
          expect.soft(to - from, `${r.name}: time without an OK reply (ms), ${from}..${to} ms into the case (fault at ${faultAt})`).toBeLessThanOrEqual(MAX_GAP_MS);
        }
      }
    }
    for (const s of Object.values(servers)) {
      if (s.child.exitCode === null && s.child.signalCode === null) s.child.kill('SIGTERM');
      await s.done;
    }
  }

  it('the harness: 3 members with one leader; kill/restart, pause/resume; connections to the members are found', async () => {
    const leader = await etcd.waitForLeader();
    expect(etcd.endpoints.split(',')).toHaveLength(3);
    for (const m of etcd.members) {
      expect(m.clientPort).toBeLessThan(32768);
      expect(m.peerPort).toBeLessThan(32768);
    }
    const follower = (leader + 1) % 3;
    await etcd.member(follower).kill();
    expect(etcd.member(follower).running).toBe(false);
    expect(await etcd.leaderIndex()).toBe(leader);
    await etcd.member(follower).restart();
    expect(await etcd.member(follower).healthy()).toBe(true);
    etcd.member(follower).pause();
    expect(await etcd.member(follower).healthy()).toBe(false);
    etcd.member(follower).resume();
    await etcd.member(follower).waitHealthy();
    // Connections are found from /proc: one this process opens to a member is counted there.
    const target = etcd.member(leader);
    const before = etcd.connectionsOf(process.pid).get(leader) ?? 0;
    const socket = connect(target.clientPort, '127.0.0.1');
    await once(socket, 'connect');
    try {
      expect(etcd.connectionsOf(process.pid).get(leader) ?? 0).toBe(before + 1);
    } finally {
      socket.destroy();
    }
    console.log(`[members] harness: leader m${leader}, ports ${etcd.members.map((m) => `${m.clientPort}/${m.peerPort}`).join(' ')}`);
  }, 30_000);

  it(`a. a follower is SIGKILLed, and restarted ${DOWN_MS / 1000} s later`, async () => {
    const term = await etcd.term();
    const { servers, load } = await fleet({ A: [], B: [] });
    await sleep(STEADY_MS);
    const victim = (await etcd.followers())[0]!;
    load.mark(`kill m${victim} (follower)`);
    await etcd.member(victim).kill();
    await sleep(DOWN_MS);
    load.mark(`restart m${victim}`);
    await etcd.member(victim).restart();
    load.mark(`m${victim} healthy`);
    await sleep(AFTER_MS);
    await verdict('a. follower killed', servers, load, term);
  }, 60_000);

  it(`b. the leader is SIGKILLed (a new one is elected), and restarted ${DOWN_MS / 1000} s later`, async () => {
    const term = await etcd.term();
    const { servers, load } = await fleet({ A: [], B: [] });
    await sleep(STEADY_MS);
    const victim = await etcd.waitForLeader();
    load.mark(`kill m${victim} (leader)`);
    await etcd.member(victim).kill();
    const next = await etcd.waitForLeader();
    load.mark(`m${next} leads`);
    await sleep(DOWN_MS);
    load.mark(`restart m${victim}`);
    await etcd.member(victim).restart();
    await sleep(AFTER_MS);
    await verdict('b. leader killed', servers, load, term);
  }, 60_000);

  it(`c. a follower is SIGSTOPped for ${PAUSE_MS} ms, then continued`, async () => {
    const term = await etcd.term();
    const { servers, load } = await fleet({ A: [], B: ['--workers', '2'] });
    const workers = workersOf(servers);
    await sleep(STEADY_MS);
    const victim = (await etcd.followers())[0]!;
    load.mark(`pause m${victim} (follower)`);
    etcd.member(victim).pause();
    await sleep(PAUSE_MS);
    load.mark(`resume m${victim}`);
    etcd.member(victim).resume();
    await etcd.member(victim).waitHealthy();
    load.mark(`m${victim} healthy`);
    await sleep(AFTER_MS);
    await verdict(`c. follower paused ${PAUSE_MS} ms`, servers, load, term, workers);
  }, 60_000 + PAUSE_MS);

  it(`d. the member a server's etcd connections go to is SIGSTOPped for ${PAUSE_MS} ms, then continued`, async () => {
    const term = await etcd.term();
    const { servers, load } = await fleet({ A: [], B: ['--workers', '2'] });
    const workers = workersOf(servers);
    await sleep(STEADY_MS);
    // Which members A (and its descendants) hold established connections to. With several,
    // the one with the most; on a tie the leader, whose pause also costs an election.
    const connections = etcd.connectionsOf(servers.A!.pid);
    expect(connections.size, `server A has connections to some member (pid ${servers.A!.pid})`).toBeGreaterThan(0);
    const leader = await etcd.waitForLeader();
    const most = Math.max(...connections.values());
    const candidates = [...connections].filter(([, n]) => n === most).map(([i]) => i);
    const victim = candidates.includes(leader) ? leader : Math.min(...candidates);
    const others = JSON.stringify(Object.fromEntries(etcd.connectionsOf(servers.B!.pid)));
    load.mark(`pause m${victim}${victim === leader ? ' (leader)' : ''}; A's connections ${JSON.stringify(Object.fromEntries(connections))}, B's ${others}`);
    etcd.member(victim).pause();
    await sleep(PAUSE_MS);
    load.mark(`resume m${victim}`);
    etcd.member(victim).resume();
    await etcd.member(victim).waitHealthy();
    await sleep(AFTER_MS);
    await verdict(`d. A's member paused ${PAUSE_MS} ms`, servers, load, term, workers);
  }, 60_000 + PAUSE_MS);

  it('e. `serve --workers 2` is started while a member is killed (twice, at once): both start and serve, also once the member is back', async () => {
    const term = await etcd.term();
    const { servers, load } = await fleet({ A: [] });
    await sleep(STEADY_MS);
    const victim = (await etcd.followers())[0]!;
    load.mark(`kill m${victim} (follower)`);
    await etcd.member(victim).kill();
    // Two of them: whether a start meets the dead member first is up to how the etcd client
    // spreads its requests over the endpoints, so one start alone may get through by luck.
    const started = Date.now();
    const outcomes = await Promise.allSettled([serve(['--workers', '2']), serve(['--workers', '2'])]);
    const startMs = Date.now() - started;
    const failed = outcomes.flatMap((o, i) => (o.status === 'rejected' ? [`W${i + 1}: ${(o.reason as Error).message.split('\n').filter((l) => l.startsWith('hailstone:')).join(' ') || (o.reason as Error).message.slice(-600)}`] : []));
    if (failed.length > 0) {
      // Not starting at all is the failure this case is about: say so, with the load's view of A.
      await load.stop();
      console.log(`[members] e. --workers 2 with m${victim} down: ${failed.length} of 2 did not start (${startMs} ms after the kill):\n${failed.join('\n')}\n${load.describe()}`);
      expect(failed, '`serve --workers 2` exited while one etcd member was down').toEqual([]);
    }
    const [W1, W2] = outcomes.map((o) => (o as PromiseFulfilledResult<ServeProcess>).value) as [ServeProcess, ServeProcess];
    const workers = workersOf({ W1, W2 });
    // Four sockets each: the kernel spreads them over both workers by their source ports.
    load.add('W1', `127.0.0.1:${W1.port}`, { concurrency: 4 });
    load.add('W2', `127.0.0.1:${W2.port}`, { concurrency: 4 });
    load.mark(`W1, W2 ready ${startMs} ms after the kill`);
    await sleep(DOWN_MS);
    load.mark(`restart m${victim}`);
    await etcd.member(victim).restart();
    await sleep(AFTER_MS);
    await verdict(`e. 2x --workers 2 started with m${victim} down (ready after ${startMs} ms)`, { ...servers, W1, W2 }, load, term, workers);
  }, 60_000);
});
