// Real processes on real files: a child serving ids from openNode is killed with SIGKILL
// at random moments and restarted with its clock stepped back 0..5 s through the skew
// option. Every id the parent received is collected: none may appear twice, and every
// id after a restart is above every id before it.
//
// HAILSTONE_CHAOS_KILLS sets the number of kills (npm run test:chaos runs many more).

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { collectText, exited, sleep, spawnFixture, waitFor } from './support/child.js';
import { prng, testSeed } from './support/seed.js';

const KILLS = Number(process.env.HAILSTONE_CHAOS_KILLS ?? '30');
const STARTUP_SYNC_DELAY_MS = 150;
const dir = mkdtempSync(join(tmpdir(), 'hailstone-kill-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

interface Incarnation {
  ids: bigint[];
  stderr: () => string;
  done: Promise<number | string>;
  kill: () => void;
  ready: Promise<void>;
  opening: Promise<void>;
}

function start(stateDir: string, skewMs: number, env: Record<string, string> = {}): Incarnation {
  const child = spawnFixture('node-child.ts', [stateDir, '9'], { HAILSTONE_CLOCK_SKEW_MS: String(skewMs), ...env });
  const ids: bigint[] = [];
  let pending: Buffer = Buffer.alloc(0);
  child.stdout!.on('data', (chunk: Buffer) => {
    pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
    const whole = pending.length - (pending.length % 8);
    for (let i = 0; i < whole; i += 8) ids.push(pending.readBigUInt64BE(i));
    pending = pending.subarray(whole);
  });
  const stderr = collectText(child.stderr!);
  const line = (text: string) =>
    new Promise<void>((resolve) => {
      const check = () => (stderr.text().includes(text) ? resolve() : setTimeout(check, 1));
      check();
    });
  return { ids, stderr: stderr.text, done: exited(child), kill: () => child.kill('SIGKILL'), ready: line('READY'), opening: line('OPENING') };
}

describe('SIGKILL and restart with the clock stepped back', () => {
  it(`${KILLS} kills at random moments: zero duplicates, ids after each restart above all before`, { timeout: 60_000 + KILLS * 6000 }, async () => {
    const random = prng(testSeed('sigkill'));
    const seen = new Set<bigint>();
    let maxSoFar = -1n;
    let total = 0;
    // How long the last openNode took (OPENING to READY): startup kills land inside it.
    let lastOpenMs = 20;
    let killedWhileOpening = 0;
    let startupKills = 0;
    for (let k = 0; k < KILLS; k++) {
      const skew = -Math.floor(random() * 5000);
      const mode = random();
      // A startup kill's incarnation has every fsync STARTUP_SYNC_DELAY_MS late, so openNode
      // (at least a file and a directory fsync) lasts long enough for a kill at a random
      // moment of it to land there even when this machine is too busy to react within ms.
      const life = start(dir, skew, mode < 0.15 ? { HAILSTONE_SYNC_DELAY_MS: String(STARTUP_SYNC_DELAY_MS) } : {});
      if (mode < 0.15) {
        // Kill during startup, while openNode reads, waits for the clock or writes the first
        // reservation — timed from the child's OPENING line, not from spawn, so the kill does
        // not land while the runtime is still loading code.
        startupKills++;
        await Promise.race([life.opening, life.done]);
        await sleep(Math.floor(random() * (lastOpenMs + 2 * STARTUP_SYNC_DELAY_MS)));
        if (!life.stderr().includes('READY')) killedWhileOpening++;
      } else {
        await Promise.race([life.opening, life.done]);
        const opened = Date.now();
        await Promise.race([life.ready, life.done]);
        lastOpenMs = Math.max(5, Date.now() - opened);
        // Some restarts are immediate: killed right after it started serving.
        await sleep(mode < 0.4 ? 0 : 20 + Math.floor(random() * 200));
      }
      life.kill();
      const code = await life.done;
      expect(code, life.stderr()).toBe('SIGKILL');
      for (const id of life.ids) {
        expect(id > maxSoFar, `incarnation ${k} (skew ${skew}): ${id} not above ${maxSoFar}`).toBe(true);
        seen.add(id);
      }
      total += life.ids.length;
      for (const id of life.ids) if (id > maxSoFar) maxSoFar = id;
    }
    expect(seen.size).toBe(total);
    expect(total).toBeGreaterThan(KILLS * 100);
    console.log(`[startup kills] ${killedWhileOpening} of ${startupKills} landed between OPENING and READY`);
    // The startup row is exercised: most startup kills hit openNode itself.
    if (startupKills >= 3) expect(killedWhileOpening, `${killedWhileOpening} of ${startupKills} startup kills landed before READY`).toBeGreaterThan(0);
  });

  it('a restart with the clock an hour behind refuses with a clear message', async () => {
    const own = join(dir, 'hour');
    const first = start(own, 0, { HAILSTONE_MAX_LEAD_MS: '300' });
    await first.ready;
    first.kill();
    await first.done;
    const life = start(own, -3_600_000);
    expect(await life.done).toBe(3);
    expect(life.stderr()).toMatch(/REFUSED CLOCK_FAR_BEHIND the clock .* is 3[56]\d{5} ms behind the reservation/);
    expect(life.ids).toEqual([]);
  });

  it('two processes on one state directory: the second fails fast, the first is unaffected', async () => {
    const first = start(dir, 0);
    await first.ready;
    const t = Date.now();
    const second = start(dir, 0);
    expect(await second.done).toBe(3);
    expect(second.stderr()).toMatch(/REFUSED STATE_LOCKED .*in use by process/);
    // Fast: no wait for the lock, only a process start — which a loaded machine makes slow.
    expect(Date.now() - t).toBeLessThan(15_000);
    const before = first.ids.length;
    // The first keeps issuing: more ids come from it after the second was refused.
    await waitFor(() => first.ids.length > before || undefined, { what: 'the first process to keep issuing' });
    first.kill();
    await first.done;
    expect(new Set(first.ids).size).toBe(first.ids.length);
  });
});
