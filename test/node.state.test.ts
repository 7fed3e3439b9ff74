// The crash-safe node on the real file system: state files, locks and startup rules.

import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { HailstoneError, decode, defineLayout, openNode, type NodeLogger, type NodeOptions } from '../src/index.js';
import { RECORD_SIZE, decodeRecord, encodeRecord } from '../src/node/state-record.js';
import { issue } from './support/issue.js';
import { prng, testSeed } from './support/seed.js';
import { silent } from './support/logger.js';

let dir: string;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'hailstone-state-'));
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

const base = (extra: Partial<NodeOptions> = {}): NodeOptions => ({
  nodeId: 4,
  stateDir: dir,
  maxLeadMs: 200,
  reservationMs: 100,
  logger: silent,
  ...extra,
});

const statePath = () => join(dir, 'node-4.w0-1.state');

async function refusalOf(options: NodeOptions): Promise<HailstoneError> {
  try {
    const node = await openNode(options);
    await node.close();
  } catch (error) {
    expect(error).toBeInstanceOf(HailstoneError);
    return error as HailstoneError;
  }
  throw new Error('expected openNode to refuse');
}

/** A state file as a previous clean run of node 4 would leave it. */
async function validState(): Promise<Uint8Array> {
  const node = await openNode(base());
  await issue(node);
  await node.close();
  return readFileSync(statePath());
}

describe('state file', () => {
  it('first start waits one lead window and says so; a restart resumes after the stored reservation at once', async () => {
    const warnings: string[] = [];
    const logger: NodeLogger = { ...silent, warn: (_, message) => warnings.push(message) };
    const t = Date.now();
    // The waiting itself, seen through the node's sleep: it must add up to the lead window.
    const slept: number[] = [];
    const sleep = async (ms: number) => {
      slept.push(ms);
      await new Promise((resolve) => setTimeout(resolve, ms));
    };
    const first = await openNode(base({ logger, sleep }));
    expect(warnings.join('\n')).toMatch(/no state: first start of node 4 .*; waiting \d+ ms before issuing/);
    expect(slept.reduce((x, y) => x + y, 0)).toBeGreaterThanOrEqual(195);
    expect(first.status()).toMatchObject({ firstStart: true, healthy: true });
    // Waited out, so the first id is issued at once: no refusal to retry past.
    const a = first.nextId();
    expect(decode(a).timestamp).toBeGreaterThan(t + 200);
    await first.close();
    const record = decodeRecord(readFileSync(statePath()));
    expect(record).toMatchObject({ nodeId: 4, workerIndex: 0, workerCount: 1, timeBits: 41 });
    expect(record.reservedUntil).toBeGreaterThanOrEqual(decode(a).timestamp);

    warnings.length = 0;
    const again = await openNode(base({ logger }));
    expect(warnings).toEqual([]); // no wait of any kind
    expect(again.status().firstStart).toBe(false);
    const b = await issue(again);
    expect(b > a).toBe(true);
    expect(decode(b).timestamp).toBeGreaterThan(record.reservedUntil);
    await again.close();
  });

  it('refuses every truncation of the state file', async () => {
    const good = await validState();
    for (let length = 0; length < RECORD_SIZE; length++) {
      writeFileSync(statePath(), good.subarray(0, length));
      const error = await refusalOf(base());
      expect(error.code).toBe('STATE_CORRUPT');
      expect(error.message).toMatch(/cannot be trusted: it is \d+ bytes long/);
    }
    writeFileSync(statePath(), Buffer.concat([good, Buffer.from([0])]));
    expect((await refusalOf(base())).code).toBe('STATE_CORRUPT');
  });

  it('refuses every single bit flip and random multi-byte damage', async () => {
    const good = await validState();
    for (let bit = 0; bit < RECORD_SIZE * 8; bit++) {
      const bad = Uint8Array.from(good);
      bad[bit >> 3]! ^= 1 << (bit & 7);
      writeFileSync(statePath(), bad);
      expect((await refusalOf(base())).code, `bit ${bit}`).toBe('STATE_CORRUPT');
    }
    const random = prng(testSeed('state-damage'));
    for (let i = 0; i < 100; i++) {
      const bad = Uint8Array.from(good);
      for (let k = 1 + Math.floor(random() * 8); k > 0; k--) bad[Math.floor(random() * RECORD_SIZE)] = Math.floor(random() * 256);
      if (bad.every((x, j) => x === good[j])) continue;
      writeFileSync(statePath(), bad);
      expect((await refusalOf(base())).code).toBe('STATE_CORRUPT');
    }
  });

  it('names the reason: bad magic, version, checksum, another node, worker or layout', async () => {
    const good = await validState();
    const record = decodeRecord(good);
    const cases: [Uint8Array, RegExp][] = [
      [Uint8Array.from(good).fill(0x41, 0, 4), /magic/],
      [(() => { const b = Uint8Array.from(good); b[5] = 2; return b; })(), /checksum|version/],
      [(() => { const b = Uint8Array.from(good); b[63]! ^= 0xff; return b; })(), /checksum/],
      [encodeRecord({ ...record, nodeId: 5 }), /belongs to node 5, not node 4/],
      [encodeRecord({ ...record, workerIndex: 1, workerCount: 2 }), /worker 1 of 2/],
      [encodeRecord({ ...record, sequenceBits: 11 }), /layout t41\.n10\.s11/],
    ];
    for (const [bytes, reason] of cases) {
      writeFileSync(statePath(), bytes);
      const error = await refusalOf(base());
      expect(error.code).toBe('STATE_CORRUPT');
      expect(error.message).toMatch(reason);
      expect(error.message).toMatch(/resetState \(--reset-state\)/);
    }
    // A version bump with a matching checksum is refused for its version.
    const v2 = Uint8Array.from(encodeRecord(record));
    new DataView(v2.buffer).setUint16(4, 2);
    const { crc32 } = await import('node:zlib');
    new DataView(v2.buffer).setUint32(60, crc32(v2.subarray(0, 60)));
    writeFileSync(statePath(), v2);
    expect((await refusalOf(base())).message).toMatch(/format version is 2/);
  });

  it('resetState recovers from a damaged file as a first start, never from zero', async () => {
    await validState();
    writeFileSync(statePath(), Buffer.from('garbage'));
    const t = Date.now();
    const node = await openNode(base({ resetState: true }));
    expect(node.status().firstStart).toBe(true);
    expect(decode(await issue(node)).timestamp).toBeGreaterThan(t + 200);
    await node.close();
    expect(() => decodeRecord(readFileSync(statePath()))).not.toThrow();
  });

  it('refuses a clock far behind the reservation with how far and what to do; waits when allowed', async () => {
    await validState();
    const error = await refusalOf(base({ clockSkewMs: -3_600_000 }));
    expect(error.code).toBe('CLOCK_FAR_BEHIND');
    // An hour, give or take how long the steps before took on a loaded machine.
    const behind = Number(/is (\d+) ms behind the reservation/.exec(error.message)?.[1]);
    expect(behind).toBeGreaterThan(3_600_000 - 60_000);
    expect(behind).toBeLessThanOrEqual(3_600_000 + 1000);
    expect(error.message).toMatch(/maxStartupWaitMs/);
    // A clock 1.5 s behind the stored reservation, with waiting allowed: starts after the wait,
    // above the old ids. The skew is set from the reservation itself, so however long the
    // steps above took on a loaded machine, the clock is that far behind it when the node opens.
    const before = decodeRecord(readFileSync(statePath())).reservedUntil;
    const warnings: string[] = [];
    const node = await openNode(base({ clockSkewMs: before - 1500 - Date.now(), maxStartupWaitMs: 5000, logger: { ...silent, warn: (_, m) => warnings.push(m) } }));
    expect(warnings.join('\n')).toMatch(/the clock is \d+ ms behind the stored reservation; waiting \d+ ms for it/);
    expect(decode(await issue(node)).timestamp).toBeGreaterThan(before);
    await node.close();
  });

  it('a leftover temp file from a crash mid-write is removed, and the state file is left whole', async () => {
    const good = await validState();
    writeFileSync(join(dir, 'node-4.w0-1.state.999.1.tmp'), good.subarray(0, 10));
    const node = await openNode(base());
    expect(readdirSync(dir).filter((n) => n.endsWith('.tmp'))).toEqual([]);
    await node.close();
  });

  it('starting under another worker count resumes after every reservation of the old configuration', async () => {
    const layout = defineLayout();
    const w0 = await openNode(base({ worker: { index: 0, count: 2 }, layout }));
    const w1 = await openNode(base({ worker: { index: 1, count: 2 }, layout }));
    const ids = [await issue(w0), await issue(w1)];
    // While they run, a single-worker node 4 must not start: its stripe overlaps theirs.
    const locked = await refusalOf(base());
    expect(locked.code).toBe('STATE_LOCKED');
    expect(locked.message).toMatch(/running as worker \d of 2/);
    await w0.close();
    await w1.close();
    const floor = Math.max(
      ...['node-4.w0-2.state', 'node-4.w1-2.state'].map((n) => decodeRecord(readFileSync(join(dir, n))).reservedUntil),
    );
    const single = await openNode(base());
    const next = await issue(single);
    expect(decode(next).timestamp).toBeGreaterThan(floor);
    expect(ids.every((id) => next > id)).toBe(true);
    await single.close();
  });
});

describe('state lock', () => {
  it('a second opener of the same node and worker fails fast; the first is unaffected', async () => {
    const first = await openNode(base());
    const before = await issue(first);
    const t = Date.now();
    const error = await refusalOf(base());
    expect(Date.now() - t).toBeLessThan(2000); // fails fast: no waiting for the lock
    expect(error.code).toBe('STATE_LOCKED');
    expect(error.message).toMatch(new RegExp(`in use by process ${process.pid}`));
    expect((await issue(first)) > before).toBe(true);
    expect(first.status().healthy).toBe(true);
    // The same node under another worker count is refused too: its stripes overlap the running one.
    const other = await openNode(base({ worker: { index: 1, count: 1 + 1 } })).catch((e: unknown) => e);
    expect((other as HailstoneError).code).toBe('STATE_LOCKED');
    await first.close();
    const again = await openNode(base());
    await again.close();
  });

  it('takes over the lock of a dead process at once', async () => {
    await validState();
    // A real process that has exited: its pid is free (or reused with another start time).
    const child = spawn(process.execPath, ['-e', '0']);
    const pid = child.pid!;
    await new Promise((resolve) => child.on('exit', resolve));
    writeFileSync(`${statePath()}.lock`, `${JSON.stringify({ host: hostname(), pid, start: '12345' })}\n`);
    const t = Date.now();
    const node = await openNode(base());
    expect(Date.now() - t).toBeLessThan(2000); // no stale-lock timeout to wait out
    expect(JSON.parse(readFileSync(`${statePath()}.lock`, 'utf8')).pid).toBe(process.pid);
    await node.close();
  });

  it('a live process on this host, a reused pid, and an unknown host are told apart', async () => {
    await validState();
    const parentStart = readFileSync(`/proc/${process.ppid}/stat`, 'utf8').split(') ')[1]!.split(' ')[19];
    writeFileSync(`${statePath()}.lock`, JSON.stringify({ host: hostname(), pid: process.ppid, start: parentStart }));
    expect((await refusalOf(base())).message).toMatch(new RegExp(`process ${process.ppid}`));
    writeFileSync(`${statePath()}.lock`, JSON.stringify({ host: 'elsewhere', pid: 1, start: '' }));
    expect((await refusalOf(base())).message).toMatch(/on host elsewhere \(it cannot be checked from here\)/);
    // The parent's pid with another start time: the pid was reused, the owner is gone.
    writeFileSync(`${statePath()}.lock`, JSON.stringify({ host: hostname(), pid: process.ppid, start: '1' }));
    const node = await openNode(base());
    await node.close();
  });
});
