// A random schedule of etcd member faults that keep quorum — a follower or the leader
// SIGKILLed and restarted, a member SIGSTOPped for a while, one fault at a time — against
// two fleet servers (one process, and --workers 2) under load, with every id of every reply
// kept. It reports how available each server stayed, as the fraction of whole seconds with
// at least one OK reply, and fails on a duplicate, a server or worker that died, or an
// availability under the floor.
//
// `npm test` runs it for HAILSTONE_MEMBER_CHAOS_MS (default 6 s); `npm run
// test:fleet-chaos` for 10 minutes. The seed is printed; HAILSTONE_SEED replays the
// schedule (which faults, on which member, for how long), not the timing around it.

import { describe, expect, it } from 'vitest';
import { Availability } from './support/availability.js';
import { childPids, sleep } from './support/child.js';
import { EtcdCluster } from './support/etcd-cluster.js';
import { etcdInstalled, requireEtcd } from './support/etcd.js';
import { type ServeProcess, duplicatesIn, startServe } from './support/serve-process.js';
import { prng, testSeed } from './support/seed.js';

const RUN_MS = Number(process.env.HAILSTONE_MEMBER_CHAOS_MS ?? 6_000);
/** The availability each server must keep (fraction of seconds with an OK reply). */
const FLOOR = Number(process.env.HAILSTONE_MEMBER_CHAOS_FLOOR ?? 0.75);

requireEtcd();

describe.skipIf(!etcdInstalled)('etcd member chaos', () => {
  it(`${Math.round(RUN_MS / 1000)} s of random member faults that keep quorum: 0 duplicates, servers alive, availability reported`, async () => {
    const random = prng(testSeed('member-chaos'));
    const etcd = await EtcdCluster.start();
    const servers: Record<string, ServeProcess> = {};
    let load: Availability | undefined;
    const events: string[] = [];
    try {
      const args = (extra: string[]) => ['--etcd', etcd.endpoints, '--cluster', 'chaos', '--port', '0', ...extra];
      [servers.single, servers.workers] = await Promise.all([startServe(args([])), startServe(args(['--workers', '2']))]);
      const workers = childPids(servers.workers!.pid);
      load = new Availability({}, { maxMs: RUN_MS + 120_000 });
      load.add('single', `127.0.0.1:${servers.single!.port}`);
      load.add('workers', `127.0.0.1:${servers.workers!.port}`, { concurrency: 4 });
      await load.ready();
      const until = Date.now() + RUN_MS;
      while (Date.now() < until) {
        await sleep(1000 + random() * 3000);
        const leader = await etcd.waitForLeader();
        const kind = random() < 0.5 ? 'kill' : 'pause';
        const target = random() < 0.34 ? leader : (leader + 1 + Math.floor(random() * 2)) % 3;
        const member = etcd.member(target);
        const holdMs = Math.round(kind === 'kill' ? 1000 + random() * 4000 : 1000 + random() * 9000);
        const label = `${kind} m${target}${target === leader ? ' (leader)' : ''} ${holdMs} ms`;
        events.push(label);
        load.mark(label);
        if (kind === 'kill') await member.kill();
        else member.pause();
        await sleep(Math.min(holdMs, Math.max(0, until - Date.now() + 1000)));
        // Back, and the cluster whole again, before the next fault: quorum is never lost.
        await etcd.heal();
      }
      const report = await load.stop();
      load = undefined;
      console.log(`[member chaos] ${events.length} faults in ${Math.round(RUN_MS / 1000)} s: ${events.join('; ')}`);
      for (const r of report) {
        console.log(
          `[member chaos] ${r.name}: available ${(100 * r.availability).toFixed(2)}% of ${r.seconds} s (${r.secondsWithoutOk} s without an OK reply), longest gap ${r.longestGapMs} ms, ${r.ids.length} ids, refusals ${JSON.stringify(r.refusals)}`,
        );
      }
      expect(duplicatesIn(report.flatMap((r) => r.ids))).toEqual([]);
      for (const [name, s] of Object.entries(servers)) expect(s.child.exitCode === null && s.child.signalCode === null, `${name} is alive\n${s.stderr().slice(-2000)}`).toBe(true);
      expect(childPids(servers.workers!.pid).sort(), 'the workers of the --workers 2 server kept running').toEqual(workers.sort());
      for (const r of report) expect(r.availability, `${r.name}: ${r.secondsWithoutOk} of ${r.seconds} s without an OK reply`).toBeGreaterThanOrEqual(FLOOR);
    } finally {
      await load?.stop();
      for (const s of Object.values(servers)) {
        s.child.kill('SIGTERM');
        await s.done;
      }
      await etcd.stop();
    }
  }, RUN_MS + 180_000);
});
