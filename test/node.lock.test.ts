// The lock that keeps one process per node id and stripe, attacked in process: the lock
// file deleted or the state dir replaced at every step of a node's disk operations while
// a second node starts in the gap; two configurations opened at once; owners told apart
// by pid, start time and boot; the kernel lock and the portable lock side by side.

import { linkSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { HailstoneError, decode, openNode, readIds, DEFAULT_LAYOUT, type HailstoneNode, type NodeLogger, type NodeOptions } from '../src/index.js';
import { kernelLockAvailability } from '../src/node/kernel-lock.js';
import { realProcesses } from '../src/node/lock.js';
import { ManualClock, ManualTimer } from './support/clock.js';
import { issue } from './support/issue.js';
import { prng, testSeed } from './support/seed.js';
import { SimProcesses, SimulatedFs, gatedFs } from './support/sim-fs.js';
import { requirePrerequisite } from './support/prerequisite.js';
import { silent } from './support/logger.js';

/** Polls `check` every 5 ms until it holds, or fails after `ms`. */
async function waitUntil(check: () => boolean, ms: number): Promise<void> {
  const until = Date.now() + ms;
  while (!check()) {
    if (Date.now() > until) throw new Error(`not within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

async function settle(turns = 4): Promise<void> {
  for (let i = 0; i < turns; i++) await new Promise((resolve) => setImmediate(resolve));
}

/** The simulated time of a test: the clock (id clock and wall clock alike) and the nodes' timer. */
interface SimTime {
  clock: ManualClock;
  timer: ManualTimer;
}

/**
 * Asks for ids while the clock moves on and the nodes' timers tick (no real time passes);
 * collects them, swallowing the refusals a node may give.
 */
async function drive(node: HailstoneNode, { clock, timer }: SimTime, random: () => number, rounds: number, maxStepMs = 200): Promise<{ ids: bigint[]; refusals: string[] }> {
  const ids: bigint[] = [];
  const refusals: string[] = [];
  const buf = new Uint8Array(8 * 32);
  for (let i = 0; i < rounds; i++) {
    clock.advance(Math.floor(random() * maxStepMs));
    timer.tick();
    try {
      ids.push(...readIds(buf, 0, node.fill(buf, 0, 1 + Math.floor(random() * 32))));
    } catch (error) {
      if (!(error instanceof HailstoneError)) throw error;
      refusals.push(error.code);
    }
    await settle(Math.floor(random() * 4));
  }
  return { ids, refusals };
}

describe('the lock lost at every step of a running node (simulated disk)', () => {
  const DIR = '/state';
  const T0 = DEFAULT_LAYOUT.epoch + 700_000_000;
  const STEPS = 40;
  const attacks = [
    ['the lock file is deleted', (fs: SimulatedFs) => fs.unlink(`${DIR}/node-5.w0-1.state.lock`)],
    ['the state dir is replaced', (fs: SimulatedFs) => fs.replaceDir(DIR)],
  ] as const;
  const newcomers = [
    ['the same configuration', { index: 0, count: 1 }],
    ['another worker count', { index: 1, count: 2 }],
  ] as const;

  /**
   * The old node runs; before its `step`-th next disk operation it is paused: the attack
   * happens, a newcomer starts and issues ids — for a moment (the old node's pending
   * reservation still ahead of the clock) or for long (past it) — and maybe dies at once,
   * in which case its restart starts right after the old node's next operation (its
   * rename, say), reading whatever the old node left on disk.
   */
  async function scenario(seed: number, step: number, attack: (fs: SimulatedFs) => void, worker: { index: number; count: number }, longPause: boolean, newcomerDies: boolean) {
    const random = prng(seed);
    const fs = new SimulatedFs(random);
    const procs = new SimProcesses();
    const clock = new ManualClock(T0);
    const timer = new ManualTimer();
    const time: SimTime = { clock, timer };
    const common = (extra: Partial<NodeOptions>): NodeOptions => ({
      nodeId: 5,
      stateDir: DIR,
      clock: clock.read,
      wallClock: clock.read,
      timer,
      sleep: async (ms) => clock.advance(ms),
      logger: silent,
      maxLeadMs: 2000,
      reservationMs: 400,
      maxStartupWaitMs: 60_000,
      ...extra,
    });
    if (worker.count > 1) {
      // The newcomer's configuration ran here before, long ago: it resumes at the floor it
      // reads rather than waiting out a first start (which alone would put it above all).
      const earlier = await openNode(common({ processes: procs.spawn().probe, fs, worker }));
      earlier.nextId();
      await earlier.close();
    }
    let armed = false;
    let ops = 0;
    let newcomer: { node: HailstoneNode; pid: number; ids: bigint[]; dead: boolean } | undefined;
    let restart: HailstoneNode | undefined;
    const restartIds: bigint[] = [];
    const openRestart = async () => {
      restart = await openNode(common({ processes: procs.spawn().probe, fs, worker }));
      restartIds.push(...(await drive(restart, time, random, 5, 5)).ids);
    };
    const oldNode = await openNode(
      common({
        processes: procs.spawn().probe,
        fs: gatedFs(fs, async () => {
          if (!armed) return;
          const op = ops++;
          if (op === step + 1 && newcomer?.dead && restart === undefined) await openRestart();
          if (op !== step) return;
          attack(fs);
          const b = procs.spawn();
          // A dead process touches nothing: its node's disk operations fail from then on.
          const bFs = gatedFs(fs, async () => {
            if (newcomer?.dead) throw new Error('this process is dead');
          });
          const node = await openNode(common({ processes: b.probe, fs: bFs, worker }));
          newcomer = { node, pid: b.pid, ids: [], dead: false };
          newcomer.ids.push(...(await drive(node, time, random, 5, longPause ? 200 : 5)).ids);
          if (newcomerDies) {
            newcomer.dead = true;
            procs.kill(b.pid);
          }
        }),
      }),
    );
    const before = (await drive(oldNode, time, random, 5)).ids;
    armed = true;
    const after = await drive(oldNode, time, random, 40);
    // A renewal that failed for another reason is retried after a backoff (on the simulated wall clock).
    for (let wait = 0; wait < 100 && oldNode.status().ownershipLost === undefined; wait++) {
      const more = await drive(oldNode, time, random, 1);
      after.ids.push(...more.ids);
      after.refusals.push(...more.refusals);
    }
    const context = `seed ${seed} step ${step} longPause ${longPause} newcomerDies ${newcomerDies}`;
    expect(newcomer, context).toBeDefined();
    if (!newcomer!.dead) {
      newcomer!.ids.push(...(await drive(newcomer!.node, time, random, 10)).ids);
      newcomer!.dead = true;
      procs.kill(newcomer!.pid);
    }
    if (restart === undefined) await openRestart();
    // The restart resumes above everything the newcomer issued.
    const maxNewcomer = newcomer!.ids.reduce((x, y) => (y > x ? y : x), -1n);
    expect(restartIds.every((id) => id > maxNewcomer), `${context}: the restart went below the newcomer`).toBe(true);
    const oldIds = [...before, ...after.ids];
    const all = [...oldIds, ...newcomer!.ids, ...restartIds];
    expect(new Set(all).size, `${context}: duplicates`).toBe(all.length);
    // The newcomer starts above everything the old node could ever issue.
    const maxOld = oldIds.reduce((x, y) => (y > x ? y : x), -1n);
    if (worker.count === 1) expect(newcomer!.ids.every((id) => id > maxOld), context).toBe(true);
    else expect(newcomer!.ids.every((id) => decode(id).timestamp > decode(maxOld).timestamp), context).toBe(true);
    const status = oldNode.status();
    expect(status.ownershipLost, context).toMatch(/lock file .* (removed|replaced|rewritten)|state directory .* removed or replaced|state file .* (was removed|was written by another process)/);
    expect(status.healthy).toBe(false);
    expect(() => oldNode.nextId()).toThrow(expect.objectContaining({ code: 'OWNERSHIP_LOST' }));
    await oldNode.close();
    await restart!.close();
  }

  for (const [attackName, attack] of attacks) {
    for (const [newcomerName, worker] of newcomers) {
      it(`${attackName} before any of its next ${STEPS} disk operations; a node of ${newcomerName} starts in the gap, issues, maybe dies and restarts: no id twice, the old node stops for good`, async () => {
        const base = testSeed(`lock-lost-${attackName}-${newcomerName}`);
        for (let step = 0; step < STEPS; step++) {
          for (const longPause of [false, true]) {
            for (const newcomerDies of [false, true]) await scenario(base + step, step, attack, worker, longPause, newcomerDies);
          }
        }
      });
    }
  }
});

describe('the state dir swapped for hard links to its files at every step (simulated disk)', () => {
  // The lock file keeps its inode and bytes, so the lock check passes: only the state dir's
  // identity tells the node that its directory is not the one it opened.
  const DIR = '/state';
  const T0 = DEFAULT_LAYOUT.epoch + 700_000_000;
  const STEPS = 40;
  it(`before each of a node's next ${STEPS} disk operations: the node stops, and issues nothing after it says so`, async () => {
    const base = testSeed('dir-swap-links');
    for (let step = 0; step < STEPS; step++) {
      const random = prng(base + step);
      const fs = new SimulatedFs(random);
      const clock = new ManualClock(T0);
      const timer = new ManualTimer();
      const time: SimTime = { clock, timer };
      let armed = false;
      let ops = 0;
      const node = await openNode({
        nodeId: 5,
        stateDir: DIR,
        clock: clock.read,
        wallClock: clock.read,
        timer,
        sleep: async (ms) => clock.advance(ms),
        logger: silent,
        maxLeadMs: 2000,
        reservationMs: 400,
        processes: new SimProcesses().spawn().probe,
        fs: gatedFs(fs, async () => {
          if (armed && ops++ === step) fs.swapDirKeepingLinks(DIR);
        }),
      });
      const ids = (await drive(node, time, random, 5)).ids;
      armed = true;
      for (let round = 0; round < 200 && node.status().ownershipLost === undefined; round++) {
        ids.push(...(await drive(node, time, random, 1)).ids);
      }
      const context = `seed ${base + step} step ${step}`;
      expect(node.status().ownershipLost ?? 'the node is still issuing', context).toMatch(/the state directory .* was removed or replaced/);
      expect(new Set(ids).size, context).toBe(ids.length);
      const after = await drive(node, time, random, 10);
      expect(after.ids, context).toEqual([]);
      expect(new Set(after.refusals), context).toEqual(new Set(['OWNERSHIP_LOST']));
      await node.close();
    }
  });
});

describe('the lock on real files', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'hailstone-lock-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));
  const base = (extra: Partial<NodeOptions> = {}): NodeOptions => ({ nodeId: 4, stateDir: dir, maxLeadMs: 200, reservationMs: 100, logger: silent, ...extra });

  it.each([
    ['one worker first', [{ index: 0, count: 1 }, { index: 0, count: 2 }]],
    ['two workers first', [{ index: 0, count: 2 }, { index: 0, count: 1 }]],
  ] as const)('two configurations of one node opened at once (%s): exactly one opens, the other is refused naming it', async (_, workers) => {
    const results = await Promise.allSettled(workers.map((worker) => openNode(base({ worker }))));
    const opened = results.filter((r) => r.status === 'fulfilled');
    expect(opened).toHaveLength(1);
    const refused = results.find((r) => r.status === 'rejected') as PromiseRejectedResult;
    expect(refused.reason).toMatchObject({ code: 'STATE_LOCKED', message: expect.stringMatching(/node 4 is running as worker 0 of [12] in .*stop it before/) });
    await (opened[0] as PromiseFulfilledResult<HailstoneNode>).value.close();
  });

  it('the state dir swapped for one holding hard links to its lock and state file (same inodes, same bytes): only the directory check can tell, and the node stops', async () => {
    // A state file first: a first start with a 10 s lead would wait 10 s.
    await (await openNode(base())).close();
    // A 10 s reservation: no renewal rewrites the state file while the dir is swapped.
    const node = await openNode(base({ maxLeadMs: 10_000, reservationMs: 10_000 }));
    const before = await issue(node);
    const lock = 'node-4.w0-1.state.lock';
    const state = 'node-4.w0-1.state';
    mkdirSync(`${dir}.new`);
    linkSync(join(dir, lock), join(`${dir}.new`, lock));
    linkSync(join(dir, state), join(`${dir}.new`, state));
    renameSync(dir, `${dir}.old`);
    renameSync(`${dir}.new`, dir);
    await waitUntil(() => node.status().ownershipLost !== undefined, 5000);
    expect(node.status().ownershipLost).toMatch(/the state directory .* was removed or replaced/);
    expect(() => node.nextId()).toThrow(expect.objectContaining({ code: 'OWNERSHIP_LOST' }));
    expect(before > 0n).toBe(true);
    await node.close();
    rmSync(`${dir}.old`, { recursive: true, force: true });
  });

  it('a lock file deleted under an open node: the node stops at its next renewal and never recreates it; a new node resumes above it', async () => {
    const warnings: string[] = [];
    const logger: NodeLogger = { ...silent, error: (_, message) => warnings.push(message) };
    const first = await openNode(base({ logger }));
    const before = [await issue(first)];
    rmSync(join(dir, 'node-4.w0-1.state.lock'));
    const second = await openNode(base());
    const fromSecond = await issue(second);
    // Within a renewal period the first node finds out.
    const until = Date.now() + 5000;
    while (first.status().ownershipLost === undefined && Date.now() < until) {
      try {
        before.push(first.nextId());
      } catch {
        // refused: it found out
      }
      await new Promise((r) => setTimeout(r, 5));
    }
    expect(first.status()).toMatchObject({ healthy: false, ownershipLost: expect.stringMatching(/lock file .* was (removed|replaced|rewritten)/) });
    expect(warnings.join('\n')).toMatch(/node 4 lost its state lock \((flock|lock file)\): .*will not take the node id back by itself/);
    expect(() => first.nextId()).toThrow(expect.objectContaining({ code: 'OWNERSHIP_LOST', retryAfterMs: 60_000 }));
    expect(before.every((id) => id < fromSecond)).toBe(true);
    await first.close();
    // The lock is the second node's, untouched by the first's close.
    expect(JSON.parse(readFileSync(join(dir, 'node-4.w0-1.state.lock'), 'utf8')).pid).toBe(process.pid);
    expect((await issue(second)) > fromSecond).toBe(true);
    await second.close();
  });

  requirePrerequisite(kernelLockAvailability().available, 'the kernel-lock addon (npm install builds it; a C compiler and make)');
  it.runIf(kernelLockAvailability().available)('the kernel lock and the portable lock respect each other', async () => {
    const withKernel = await openNode(base());
    const lock = JSON.parse(readFileSync(join(dir, 'node-4.w0-1.state.lock'), 'utf8'));
    expect(lock).toMatchObject({ flock: true, pid: process.pid });
    await expect(openNode(base({ kernelLocks: false }))).rejects.toMatchObject({ code: 'STATE_LOCKED' });
    await withKernel.close();
    const portable = await openNode(base({ kernelLocks: false }));
    expect(JSON.parse(readFileSync(join(dir, 'node-4.w0-1.state.lock'), 'utf8'))).toMatchObject({ flock: false });
    await expect(openNode(base())).rejects.toMatchObject({ code: 'STATE_LOCKED' });
    await portable.close();
  });

  it.runIf(kernelLockAvailability().available)('a flocked lock file counts as live whatever its content says; a dead flock owner is gone whatever its pid', async () => {
    const holder = await openNode(base());
    const path = join(dir, 'node-4.w0-1.state.lock');
    // Rewritten in place to name a process that does not exist: the flock still says live.
    writeFileSync(path, JSON.stringify({ host: hostname(), pid: 999_999_999, start: '1', boot: '', flock: true }));
    await expect(openNode(base())).rejects.toMatchObject({ code: 'STATE_LOCKED' });
    await holder.close(); // does not remove the rewritten file (no longer its content)
    // Nobody holds the flock now; the record names a live process (this one's parent) that
    // used the kernel lock: it is gone as far as the lock is concerned.
    const parentStart = readFileSync(`/proc/${process.ppid}/stat`, 'utf8').split(') ')[1]!.split(' ')[19];
    writeFileSync(path, JSON.stringify({ host: hostname(), pid: process.ppid, start: parentStart, boot: '', flock: true }));
    const node = await openNode(base());
    await node.close();
  });
});

describe('who owns a lock', () => {
  const self = realProcesses.self();

  it('this very process: same pid, start time and boot', () => {
    expect(realProcesses.isAlive(self)).toBe(true);
  });

  it('our pid with another start time is not us (a restart in a new PID namespace): gone', () => {
    expect(self.start).not.toBe('');
    expect(realProcesses.isAlive({ ...self, start: String(Number(self.start) + 1) })).toBe(false);
  });

  it('another boot id: from before a reboot, gone', () => {
    expect(self.boot).not.toBe('');
    expect(realProcesses.isAlive({ ...self, boot: 'another-boot' })).toBe(false);
  });

  it('a live process with its own start time: alive; with a reused pid: gone', () => {
    const parentStart = readFileSync(`/proc/${process.ppid}/stat`, 'utf8').split(') ')[1]!.split(' ')[19]!;
    expect(realProcesses.isAlive({ host: self.host, pid: process.ppid, start: parentStart, boot: self.boot })).toBe(true);
    expect(realProcesses.isAlive({ host: self.host, pid: process.ppid, start: '1', boot: self.boot })).toBe(false);
  });
});
