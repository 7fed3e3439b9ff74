// The durable reservation on a simulated file system that loses un-synced writes at a
// crash and injects disk faults. The clock is a ManualClock and the nodes' timer a ManualTimer:
// waits advance the clock and tick the timer, so no real time passes.
//
// The invariant checked after every call: no id handed out has a timestamp past the
// reservation a crash at that moment would leave on disk.

import { describe, expect, it } from 'vitest';
import { HailstoneError, decode, openNode, readIds, DEFAULT_LAYOUT, type HailstoneNode, type NodeLogger } from '../src/index.js';
import { decodeRecord } from '../src/node/state-record.js';
import { ManualClock, ManualTimer } from './support/clock.js';
import { prng, testSeed } from './support/seed.js';
import { CrashError, SimProcesses, SimulatedFs } from './support/sim-fs.js';
import { silent } from './support/logger.js';

const DIR = '/state';
const STATE = `${DIR}/node-5.w0-1.state`;
const T0 = DEFAULT_LAYOUT.epoch + 700_000_000;

async function settle(turns = 4): Promise<void> {
  for (let i = 0; i < turns; i++) await new Promise((resolve) => setImmediate(resolve));
}

/**
 * Lets time pass in steps of `stepMs` — the clock moves, the nodes' timers tick, their
 * writes run — until `check` holds; fails naming `what` after `maxSteps`.
 */
async function passTimeUntil(world: World, check: () => boolean, what: string, stepMs = 10, maxSteps = 2000): Promise<void> {
  for (let step = 0; !check(); step++) {
    if (step >= maxSteps) throw new Error(`${what}: not within ${stepMs * maxSteps} ms of the clock`);
    world.clock.advance(stepMs);
    world.timer.tick();
    await settle();
  }
}

/** The reservation a crash right now would leave, or -Infinity when no state would survive. */
function durableReservation(fs: SimulatedFs): number {
  const bytes = fs.durableContent(STATE);
  return bytes === undefined ? -Infinity : decodeRecord(bytes).reservedUntil;
}

interface World {
  fs: SimulatedFs;
  procs: SimProcesses;
  clock: ManualClock;
  /** The nodes' periodic work, run by drive() and the tests: no real time passes. */
  timer: ManualTimer;
}

async function open(
  world: World,
  extra: { maxStartupWaitMs?: number; reservationMs?: number; logger?: NodeLogger } = {},
  process = world.procs.spawn(),
): Promise<{ node: HailstoneNode; pid: number }> {
  const { pid, probe } = process;
  const node = await openNode({
    nodeId: 5,
    stateDir: DIR,
    fs: world.fs,
    processes: probe,
    clock: world.clock.read,
    wallClock: world.clock.read,
    timer: world.timer,
    sleep: async (ms) => world.clock.advance(ms),
    logger: silent,
    maxLeadMs: 2000,
    reservationMs: 1000,
    ...extra,
  });
  return { node, pid };
}

/**
 * Asks for ids while the clock moves on, letting renewals run. Stops at a crash. Returns
 * the ids received; checks the on-disk invariant after every call.
 */
async function drive(world: World, node: HailstoneNode, random: () => number, rounds: number): Promise<bigint[]> {
  const ids: bigint[] = [];
  const buf = new Uint8Array(8 * 64);
  for (let i = 0; i < rounds && !world.fs.crashed; i++) {
    world.clock.advance(Math.floor(random() * 300));
    world.timer.tick();
    try {
      const got = random() < 0.3 ? [node.nextId()] : readIds(buf, 0, node.fill(buf, 0, 1 + Math.floor(random() * 64)));
      ids.push(...got);
      const limit = durableReservation(world.fs);
      for (const id of got) {
        if (decode(id).timestamp > limit) throw new Error(`id ${id} is past the durable reservation ${limit}`);
      }
    } catch (error) {
      if (!(error instanceof HailstoneError) || !['LIMIT_REACHED', 'CLOCK_BEHIND'].includes(error.code)) throw error;
    }
    // Let a renewal run for 0..3 event-loop turns: calls also land while a write is in flight.
    await settle(Math.floor(random() * 4));
  }
  return ids;
}

describe('durable reservation on a simulated disk', () => {
  it('a crash at every step of startup and of every renewal, restart 5 s back: no id reissued', async () => {
    const base = testSeed('crash-every-step');
    let scenarios = 0;
    const interrupted = new Map<string, number>();
    for (let s = 0; s < 8; s++) {
      for (let crashAt = 0; crashAt < 70; crashAt++) {
        const random = prng(base + s * 7919 + crashAt);
        const world: World = { fs: new SimulatedFs(random), procs: new SimProcesses(), clock: new ManualClock(T0), timer: new ManualTimer() };
        world.fs.crashAtOp = crashAt;
        const before: bigint[] = [];
        const process = world.procs.spawn();
        try {
          const first = await open(world, {}, process);
          before.push(...(await drive(world, first.node, random, 60)));
        } catch (error) {
          // Only a crash may stop the first incarnation.
          if (!(error instanceof CrashError) && !world.fs.crashed) throw error;
        }
        if (world.fs.crashedAt !== undefined) interrupted.set(world.fs.crashedAt, (interrupted.get(world.fs.crashedAt) ?? 0) + 1);
        world.procs.kill(process.pid);
        world.fs.crash();

        world.clock.advance(-5000);
        const second = await open(world, { maxStartupWaitMs: 60_000 });
        const after = await drive(world, second.node, random, 20);
        await second.node.close();

        const maxBefore = before.reduce((a, b) => (b > a ? b : a), -1n);
        const context = `seed ${base} s=${s} crashAt=${crashAt}`;
        expect(after.length, context).toBeGreaterThan(0);
        expect(after.every((id) => id > maxBefore), context).toBe(true);
        expect(new Set([...before, ...after]).size, context).toBe(before.length + after.length);
        scenarios++;
      }
    }
    expect(scenarios).toBe(8 * 70);
    // Crashes interrupted every step of the durable write, many times each, and startup.
    console.log('crashes by interrupted operation', Object.fromEntries(interrupted));
    for (const op of ['openForWrite', 'write', 'sync', 'close', 'rename', 'syncDir', 'createExclusive', 'readFile']) {
      expect(interrupted.get(op) ?? 0, op).toBeGreaterThanOrEqual(8);
    }
  });

  it('renews only when its timer ticks (time is what it is given), and a closed node cancels its timer', async () => {
    const world: World = { fs: new SimulatedFs(prng(testSeed('tick'))), procs: new SimProcesses(), clock: new ManualClock(T0), timer: new ManualTimer() };
    const { node } = await open(world);
    expect(world.timer.running).toBe(1);
    const { reservedUntil, renewals } = node.status();
    // 900 ms of a 1000 ms reservation gone: due, but nothing runs until the timer ticks.
    world.clock.advance(900);
    await settle();
    expect(node.status().renewals).toBe(renewals);
    world.timer.tick();
    await settle();
    expect(node.status().renewals).toBe(renewals + 1);
    expect(node.status().reservedUntil).toBeGreaterThan(reservedUntil);
    expect(durableReservation(world.fs)).toBe(node.status().reservedUntil);
    await node.close();
    expect(world.timer.running).toBe(0);
  });

  it('fsync fails once with EIO and drops the data: no id past the last confirmed reservation', async () => {
    const random = prng(testSeed('eio-once'));
    const world: World = { fs: new SimulatedFs(random), procs: new SimProcesses(), clock: new ManualClock(T0), timer: new ManualTimer() };
    const { node, pid } = await open(world);
    const confirmed = node.status().reservedUntil;
    let failed = 0;
    world.fs.fault = (op, path) => (op === 'sync' && path.endsWith('.tmp') && failed++ === 0 ? 'EIO' : undefined);

    // Move the clock past the reservation: the refusal starts a renewal, which fails.
    const ids = [node.nextId()];
    world.clock.set(confirmed + 1);
    expect(() => node.nextId()).toThrow(/reservation/);
    await settle();
    expect(failed).toBe(1);
    expect(node.status().reservedUntil).toBe(confirmed);
    expect(() => node.nextId()).toThrow(/storage is failing.*EIO/);
    for (const id of ids) expect(decode(id).timestamp).toBeLessThanOrEqual(durableReservation(world.fs));
    // The failed round left the file as it was; the next round used a new temp file and succeeded.
    world.clock.advance(300);
    const more = await drive(world, node, random, 10);
    expect(node.status().storageErrors).toBe(1);
    expect(node.status().reservedUntil).toBeGreaterThan(confirmed);
    expect(more.length).toBeGreaterThan(0);
    // No descriptor was fsynced twice: every sync is on a distinct temp file.
    const syncs = world.fs.log.filter((line) => line.startsWith('sync '));
    expect(new Set(syncs).size).toBe(syncs.length);

    world.procs.kill(pid);
    world.fs.crash();
    world.clock.advance(-5000);
    const second = await open(world, { maxStartupWaitMs: 60_000 });
    const after = await drive(world, second.node, random, 5);
    const maxBefore = [...ids, ...more].reduce((a, b) => (b > a ? b : a));
    expect(after.every((id) => id > maxBefore)).toBe(true);
    await second.node.close();
  });

  it('ENOSPC on every write: old state intact, issuing stops at the old reservation, resumes after recovery', async () => {
    const random = prng(testSeed('enospc'));
    const world: World = { fs: new SimulatedFs(random), procs: new SimProcesses(), clock: new ManualClock(T0), timer: new ManualTimer() };
    const { node } = await open(world);
    const oldRecord = world.fs.durableContent(STATE)!.slice();
    const oldR = node.status().reservedUntil;
    let full = true;
    world.fs.fault = (op, path) => (full && op === 'write' && path.endsWith('.tmp') ? 'ENOSPC' : undefined);

    const buf = new Uint8Array(8 * 16);
    let refusal: HailstoneError | undefined;
    let lastTimestamp = 0;
    // Ask until the refusal reports the failing disk (the first one may only say a renewal started).
    for (let i = 0; i < 40 && !/storage is failing/.test(refusal?.message ?? ''); i++) {
      world.clock.advance(100);
      world.timer.tick();
      try {
        const n = node.fill(buf);
        lastTimestamp = decode(readIds(buf, 0, n).at(-1)!).timestamp;
      } catch (error) {
        refusal = error as HailstoneError;
      }
      await settle();
    }
    expect(refusal?.code).toBe('LIMIT_REACHED');
    expect(refusal?.retryAfterMs).toBeGreaterThan(0);
    expect(refusal?.message).toMatch(/storage is failing.*ENOSPC/);
    expect(lastTimestamp).toBeLessThanOrEqual(oldR);
    expect(world.fs.durableContent(STATE)).toEqual(oldRecord);
    const status = node.status();
    expect(status.healthy).toBe(false);
    expect(status.reason).toMatch(/storage errors/);
    expect(status.storageErrors).toBeGreaterThan(0);
    expect(status.lastStorageError?.code).toBe('ENOSPC');
    // Refusals continue while the disk is full, however often the caller retries.
    for (let i = 0; i < 5; i++) {
      expect(() => node.nextId()).toThrow(HailstoneError);
      world.clock.advance(30);
      world.timer.tick();
      await settle();
    }
    expect(decodeRecord(world.fs.durableContent(STATE)!).reservedUntil).toBe(oldR);

    full = false;
    let resumed: bigint | undefined;
    for (let i = 0; i < 100 && resumed === undefined; i++) {
      world.clock.advance(20);
      world.timer.tick();
      await settle();
      try {
        resumed = node.nextId();
      } catch {
        // still renewing
      }
    }
    expect(resumed).toBeDefined();
    expect(decode(resumed!).timestamp).toBeGreaterThan(lastTimestamp);
    expect(node.status().healthy).toBe(true);
    await node.close();
  });

  it('a disk full through many retries is logged as one episode: one error line when it starts, one "recovered after N ms (K failures)" line', async () => {
    const random = prng(testSeed('enospc-episode'));
    const world: World = { fs: new SimulatedFs(random), procs: new SimProcesses(), clock: new ManualClock(T0), timer: new ManualTimer() };
    const lines: { level: string; fields: Record<string, unknown>; message: string }[] = [];
    const record = (level: string) => (fields: object, message: string) => lines.push({ level, fields: fields as Record<string, unknown>, message });
    const logger: NodeLogger = { info() {}, warn: record('warn'), error: record('error') };
    // A short reservation: retries every ~25 ms, so many fail within a fraction of a second.
    const { node } = await open(world, { reservationMs: 100, logger });
    const before = lines.length;
    let full = true;
    world.fs.fault = (op, path) => (full && op === 'write' && path.endsWith('.tmp') ? 'ENOSPC' : undefined);
    world.clock.advance(100); // the reservation is due for renewal
    await passTimeUntil(world, () => node.status().storageErrors >= 10, '10 failed renewals');
    full = false;
    await passTimeUntil(world, () => node.status().healthy, 'the renewal to succeed again');
    const failures = node.status().storageErrors;
    const episode = lines.slice(before);
    expect(episode.map((l) => l.level)).toEqual(['error', 'warn']);
    expect(episode[0]!.message).toMatch(/^cannot extend the durable reservation \(ENOSPC: .*\); issuing only up to .*, then refusing$/);
    expect(episode[0]!.fields).toMatchObject({ nodeId: 5, worker: 0, code: 'ENOSPC' });
    expect(episode[1]!.message).toMatch(new RegExp(`^durable reservation writes recovered after \\d+ ms \\(${failures} failures\\)$`));
    expect(episode[1]!.fields).toMatchObject({ nodeId: 5, worker: 0, failures });
    await node.close();
  });
});
