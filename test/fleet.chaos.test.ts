
// A random schedule of what a fleet meets — holders SIGKILLed and restarted (with their
// node id, or any), holders SIGSTOPped past their lease while another claims their id,
// etcd killed and restarted on its data, restarts with a skewed clock — under load, every
// id of every reply kept and checked for duplicates at the end. `npm run test:fleet-chaos`
// runs it (HAILSTONE_FLEET_CHAOS_EVENTS events); `npm test` runs the fleet simulator's seed
// band instead, which covers these schedules in virtual time. The seed is printed;
// HAILSTONE_SEED replays the schedule.

import { describe, expect, it } from 'vitest';
import { decode } from '../src/index.js';
import { TestEtcd, etcdInstalled, requireEtcd } from './support/etcd.js';
import { Load, type ServeProcess, duplicatesIn, startServe } from './support/serve-process.js';
import { prng, testSeed } from './support/seed.js';

const EVENTS = Number(process.env.HAILSTONE_FLEET_CHAOS_EVENTS ?? 4);
const TTL_S = 3;

interface Running {
  proc: ServeProcess;
  load: Load;
  /** Started with --node-id. */
  fixed: boolean;
}

requireEtcd();

describe.skipIf(!etcdInstalled)('fleet chaos', () => {
  it(`${EVENTS} random events against 3 servers and etcd: 0 duplicates`, async () => {
    const random = prng(testSeed('fleet-chaos'));
    const pick = <T>(items: T[]): T => items[Math.floor(random() * items.length)]!;
    const etcd = await TestEtcd.start();
    const collected: bigint[] = [];
    const running: Running[] = [];
    const log: string[] = [];
    const args = (extra: string[] = []) => ['--etcd', etcd.endpoint, '--cluster', 'chaos', '--port', '0', '--max-lead-ms', '300', '--lease-ttl-s', String(TTL_S), ...extra];
    const start = async (extra: string[] = []) => {
      const proc = await startServe(args(extra));
      const r = { proc, load: new Load([`127.0.0.1:${proc.port}`], { concurrency: 2 }), fixed: extra.includes('--node-id') };
      running.push(r);
      return r;
    };
    const retire = async (r: Running, how: 'SIGKILL' | 'SIGTERM') => {
      running.splice(running.indexOf(r), 1);
      r.proc.child.kill(how);
      await r.proc.done;
      for (const id of await r.load.stop()) collected.push(id);
    };
    const nodeOf = (r: Running) => Number(/ node=(\d+) /.exec(r.proc.stdout())![1]);
    try {
      for (let i = 0; i < 3; i++) await start();
      for (let event = 0; event < EVENTS; event++) {
        await Promise.all(running.map((r) => r.load.more(200, 30_000)));
        const victim = pick(running);
        const k = nodeOf(victim);
        const kind = pick(['kill', 'kill-any', 'pause', 'etcd', 'skew'] as const);
        log.push(`${event}: ${kind} node ${k}`);
        if (kind === 'kill' || kind === 'kill-any') {
          await retire(victim, 'SIGKILL');
          await start(kind === 'kill' ? ['--node-id', String(k), '--claim-wait-ms', '30000'] : []);
        } else if (kind === 'pause') {
          process.kill(victim.proc.pid, 'SIGSTOP');
          const usurper = await start(['--node-id', String(k), '--claim-wait-ms', '30000']);
          await usurper.load.more(100, 30_000);
          process.kill(victim.proc.pid, 'SIGCONT');
          if (victim.fixed) {
            // Its given id is held by the usurper: after the claim wait it stops, exit 1,
            // saying so — an orchestrator sees it.
            expect(await victim.proc.done, victim.proc.stderr()).toBe(1);
            expect(victim.proc.stderr()).toMatch(/hailstone: NODE_ID_TAKEN: node id \d+ was taken by another instance while this server was fenced/);
            running.splice(running.indexOf(victim), 1);
            for (const id of await victim.load.stop()) collected.push(id);
          } else {
            // It fences itself, claims another id and serves again — under load the whole
            // time; then it leaves, to keep the fleet at three.
            await victim.load.more(100, 30_000);
            await retire(victim, 'SIGTERM');
          }
        } else if (kind === 'etcd') {
          await etcd.kill();
          await new Promise((r) => setTimeout(r, 500 + random() * 2000));
          await etcd.run();
        } else {
          await retire(victim, 'SIGTERM');
          const skew = Math.round((random() - 0.5) * 4000);
          await start(['--node-id', String(k), '--claim-wait-ms', '30000', '--clock-skew-ms', String(skew), '--max-startup-wait-ms', '10000']);
        }
      }
      await Promise.all(running.map((r) => r.load.more(200, 30_000)));
    } finally {
      for (const r of [...running]) await retire(r, 'SIGTERM');
      await etcd.stop();
    }
    console.log(`fleet chaos: ${collected.length} ids from ${new Set(collected.map((id) => decode(id).nodeId)).size} node ids; events: ${log.join('; ')}`);
    expect(collected.length).toBeGreaterThan(600 * (EVENTS + 1));
    expect(duplicatesIn(collected), log.join('; ')).toEqual([]);
  }, 60_000 + EVENTS * 20_000);
});
