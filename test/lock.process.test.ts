// The local lock and the worker supervisor attacked as a hostile operator would, with real
// `hailstone serve` processes on real files: another worker count on the same state dir,
// the lock file deleted or the state dir recreated under a running server, a restart in a
// new PID namespace that gets the same pid, workers that fail at startup or keep crashing.
// Every id of every reply is collected and checked for duplicates.

import { spawnSync } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { cpSync, linkSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { decode } from '../src/index.js';
import { kernelLockAvailability } from '../src/node/kernel-lock.js';
import { CLI_ENTRY, childPids, collectText, exited, readyPort, spawnTracked, waitFor } from './support/child.js';
import { requirePrerequisite } from './support/prerequisite.js';
import { Load, duplicatesIn, spawnServe, startServe } from './support/serve-process.js';
import { TRANSPORTS } from './support/udp.js';

const root = mkdtempSync(join(tmpdir(), 'hailstone-lock-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

/** The metrics port a server logged (it ran with --metrics 127.0.0.1:0). */
async function metricsPort(stderr: () => string): Promise<number> {
  const m = await waitFor(() => /"metrics":"http:\/\/127\.0\.0\.1:(\d+)"/.exec(stderr()) ?? undefined, { what: 'the metrics address' });
  return Number(m[1]);
}

async function health(port: number): Promise<{ status: number; body: { status: string; reason?: string } }> {
  const res = await fetch(`http://127.0.0.1:${port}/healthz`);
  return { status: res.status, body: (await res.json()) as { status: string; reason?: string } };
}

/** True while any process of the group led by `pid` lives. */
function groupAlive(pid: number): boolean {
  try {
    process.kill(-pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** The lines on stderr that are not JSON log lines. */
function plainLines(stderr: string): string[] {
  return stderr.split('\n').filter((l) => l !== '' && !l.startsWith('{'));
}

describe('one node id in one state dir: one configuration at a time', () => {
  it('serve, then serve --workers 2 on the same dir while the first waits out its first start: the second is refused, naming the running configuration', async () => {
    const dir = join(root, 'two-configs');
    const first = spawnServe(['--port', '0', '--state-dir', dir, '--max-lead-ms', '1500']);
    await waitFor(() => /first start/.test(first.stderr()), { what: 'the first server\'s first-start wait', child: first.child, stderr: { text: first.stderr } });
    const second = spawnServe(['--port', '0', '--state-dir', dir, '--workers', '2', '--max-lead-ms', '1500']);
    expect(await second.done).toBe(1);
    expect(plainLines(second.stderr())).toEqual([expect.stringMatching(/^hailstone: STATE_LOCKED: node 0 is running as worker 0 of 1 in .* \(process \d+\)/)]);
    const port = await readyPort(first.child, { text: first.stdout }, { text: first.stderr });
    const load = new Load([`127.0.0.1:${port}`]);
    await load.more(500);
    expect(duplicatesIn(await load.stop())).toEqual([]);
    first.child.kill('SIGTERM');
    expect(await first.done).toBe(0);
  });

  it('both configurations started at once: exactly one serves', async () => {
    const dir = join(root, 'race');
    const a = spawnServe(['--port', '0', '--state-dir', dir, '--max-lead-ms', '800']);
    const b = spawnServe(['--port', '0', '--state-dir', dir, '--workers', '2', '--max-lead-ms', '800']);
    const outcomes = await Promise.all(
      [a, b].map((s) =>
        readyPort(s.child, { text: s.stdout }, { text: s.stderr }).then(
          (port) => ({ s, port }),
          () => ({ s, port: undefined }),
        ),
      ),
    );
    const serving = outcomes.filter((o) => o.port !== undefined);
    expect(serving).toHaveLength(1);
    const refused = outcomes.find((o) => o.port === undefined)!.s;
    expect(await refused.done).toBe(1);
    expect(refused.stderr()).toMatch(/STATE_LOCKED/);
    serving[0]!.s.child.kill('SIGTERM');
    expect(await serving[0]!.s.done).toBe(0);
  });
});

describe('a running node proves it still holds its lock', () => {
  const attacks: [string, (dir: string) => void, string[]][] = [
    ['the lock file is deleted (a tmp cleaner)', (dir) => rmSync(join(dir, 'node-0.w0-1.state.lock')), []],
    ['the state dir is deleted and recreated (a provisioning script)', (dir) => (rmSync(dir, { recursive: true }), mkdirSync(dir)), []],
    ['the lock file is deleted, and the node restarted with another worker count', (dir) => rmSync(join(dir, 'node-0.w0-1.state.lock')), ['--workers', '2']],
  ];
  it.each(attacks)('%s under a running server, then a second server on the dir: 0 duplicates; the first fails closed', async (_, attack, secondArgs) => {
    const dir = join(root, `attack-${Math.random().toString(36).slice(2)}`);
    const common = ['--port', '0', '--state-dir', dir, '--max-lead-ms', '600', '--reservation-ms', '200'];
    const first = await startServe([...common, '--metrics', '127.0.0.1:0']);
    const firstMetrics = await metricsPort(first.stderr);
    const loadA = new Load([`127.0.0.1:${first.port}`]);
    await loadA.more(300);
    attack(dir);
    const second = await startServe([...common, ...secondArgs]);
    const loadB = new Load([`127.0.0.1:${second.port}`], { concurrency: 8 });
    await loadB.more(300);
    // The first stops at its reservation (at most 600 ms ahead) and says why.
    await waitFor(async () => (await health(firstMetrics)).status === 503, { what: 'the first server to turn unhealthy' });
    expect((await health(firstMetrics)).body.reason).toMatch(/lock/);
    await waitFor(() => (loadA.refusals.get('UNAVAILABLE') ?? 0) > 3, { what: 'the first server to answer UNAVAILABLE' });
    const idsA = await loadA.stop();
    await loadB.more(300);
    const idsB = await loadB.stop();
    expect(first.stderr()).toMatch(/"level":50.*lost its state lock/);
    expect(duplicatesIn([...idsA, ...idsB])).toEqual([]);
    // It never recreated the lock it lost: the lock files are the second server's.
    for (const name of readdirSync(dir).filter((n) => n.endsWith('.state.lock'))) {
      expect(JSON.parse(readFileSync(join(dir, name), 'utf8')).pid).not.toBe(first.pid);
    }
    for (const s of [first, second]) s.child.kill('SIGTERM');
    expect(await first.done).toBe(0);
    expect(await second.done).toBe(0);
  });
});

describe('a paused holder, and files put back or copied behind its back', () => {
  // The lock file is moved away while its holder is paused, another server takes the node
  // over, and the original lock is put back (over the newcomer's, or after it stopped): the
  // name, inode and bytes are the holder's own again. The state file is not: the newcomer
  // wrote it. The holder must notice that, and stop.
  it.each([
    ['over the running newcomer\'s lock', 'over', {}],
    ['after the newcomer stopped', 'after', {}],
    ['over the newcomer\'s lock, with the portable lock file alone', 'over', { HAILSTONE_LOCK_ADDON: join(root, 'no-such-addon.node') }],
  ] as const)('the lock moved away under a SIGSTOPped holder and put back %s: 0 duplicates, the holder stops', async (_, when, env) => {
    const dir = join(root, `putback-${Math.random().toString(36).slice(2)}`);
    const common = ['--port', '0', '--state-dir', dir, '--max-lead-ms', '600', '--reservation-ms', '200'];
    const lock = join(dir, 'node-0.w0-1.state.lock');
    const a = await startServe(common, env);
    const loadA = new Load([`127.0.0.1:${a.port}`]);
    await loadA.more(500);
    process.kill(a.pid, 'SIGSTOP');
    renameSync(lock, `${lock}.saved`);
    const b = await startServe(common, env);
    const loadB = new Load([`127.0.0.1:${b.port}`]);
    await loadB.more(2000);
    let idsB: bigint[] = [];
    if (when === 'after') {
      idsB = await loadB.stop();
      b.child.kill('SIGTERM');
      expect(await b.done).toBe(0);
    }
    renameSync(`${lock}.saved`, lock);
    process.kill(a.pid, 'SIGCONT');
    await waitFor(() => /lost its state lock/.test(a.stderr()), { what: 'the paused holder to notice', child: a.child });
    expect(a.stderr()).toMatch(/the state file .* was written by another process/);
    if (when === 'over') {
      // B serves on, or finds its own lock replaced (by A's, put back over it) and stops.
      const target = loadB.ids.length + 500;
      await waitFor(() => loadB.ids.length >= target || /lost its state lock/.test(b.stderr()), { what: 'the newcomer to serve on or stop', child: b.child });
      idsB = await loadB.stop();
    }
    const idsA = await loadA.stop();
    expect(duplicatesIn([...idsA, ...idsB])).toEqual([]);
    a.child.kill('SIGTERM');
    await a.done;
    if (when === 'over') {
      b.child.kill('SIGTERM');
      await b.done;
    }
  });

  it('the state dir replaced under a server with a long lead, and a newcomer with the default (shorter) lead: the holder stops within a few hundred ms, 0 duplicates', async () => {
    const dir = join(root, 'long-lead');
    // A state file first (a first start with a 20 s lead would wait 20 s).
    const before = await startServe(['--port', '0', '--state-dir', dir, '--max-lead-ms', '100']);
    before.child.kill('SIGTERM');
    expect(await before.done).toBe(0);
    const a = await startServe(['--port', '0', '--state-dir', dir, '--max-lead-ms', '20000', '--reservation-ms', '20000']);
    const loadA = new Load([`127.0.0.1:${a.port}`]);
    await loadA.more(500);
    renameSync(dir, `${dir}.old`);
    mkdirSync(dir);
    const replacedAt = Date.now();
    await waitFor(() => /lost its state lock/.test(a.stderr()), { what: 'the holder to notice', child: a.child });
    // Well inside the newcomer's first-start wait (its lead: 2000 ms).
    expect(Date.now() - replacedAt).toBeLessThan(1500);
    const b = await startServe(['--port', '0', '--state-dir', dir]);
    const loadB = new Load([`127.0.0.1:${b.port}`]);
    await loadB.more(2000);
    expect(duplicatesIn([...(await loadA.stop()), ...(await loadB.stop())])).toEqual([]);
    for (const s of [a, b]) s.child.kill('SIGTERM');
    await a.done;
    await b.done;
  });

  it('the state dir swapped for one holding hard links to its lock and state file: the server stops (only the directory check can tell), a newcomer is refused, 0 duplicates', async () => {
    const dir = join(root, 'hardlinked');
    // A state file first, then a 10 s reservation: no renewal rewrites the state file during the swap.
    const before = await startServe(['--port', '0', '--state-dir', dir, '--max-lead-ms', '100']);
    before.child.kill('SIGTERM');
    expect(await before.done).toBe(0);
    const a = await startServe(['--port', '0', '--state-dir', dir, '--max-lead-ms', '10000', '--reservation-ms', '10000']);
    const load = new Load([`127.0.0.1:${a.port}`]);
    await load.more(500);
    mkdirSync(`${dir}.new`);
    for (const name of ['node-0.w0-1.state.lock', 'node-0.w0-1.state']) linkSync(join(dir, name), join(`${dir}.new`, name));
    renameSync(dir, `${dir}.old`);
    renameSync(`${dir}.new`, dir);
    await waitFor(() => /lost its state lock/.test(a.stderr()), { what: 'the server to notice its dir was swapped', child: a.child });
    expect(a.stderr()).toMatch(/the state directory .* was removed or replaced/);
    // The lock in the new dir is still the running server's: a newcomer there is refused.
    const newcomer = spawnServe(['--port', '0', '--state-dir', dir, '--max-lead-ms', '100']);
    expect(await newcomer.done).toBe(1);
    expect(plainLines(newcomer.stderr())).toEqual([expect.stringMatching(/^hailstone: STATE_LOCKED: /)]);
    const ids = await load.stop();
    expect(ids.length).toBeGreaterThanOrEqual(500);
    expect(duplicatesIn(ids)).toEqual([]);
    a.child.kill('SIGTERM');
    await a.done;
  });

  it('a copy of a live state dir (cp -a), started with the same node id: refused while the original runs', async () => {
    const dir = join(root, 'original');
    const a = await startServe(['--port', '0', '--state-dir', dir, '--max-lead-ms', '300']);
    cpSync(dir, `${dir}-copy`, { recursive: true, preserveTimestamps: true });
    const copy = spawnServe(['--port', '0', '--state-dir', `${dir}-copy`, '--max-lead-ms', '300']);
    expect(await copy.done).toBe(1);
    expect(plainLines(copy.stderr())).toEqual([expect.stringMatching(/^hailstone: STATE_LOCKED: /)]);
    a.child.kill('SIGTERM');
    expect(await a.done).toBe(0);
  });
});

const unshareWorks = process.platform === 'linux' && spawnSync('unshare', ['--pid', '--fork', '--mount-proc', 'true']).status === 0;
requirePrerequisite(unshareWorks, 'PID namespaces (unshare --pid --fork --mount-proc, as root) to restart a server as pid 1');

describe('a restart in a new PID namespace gets the same pid', () => {
  // With the kernel lock, and with the portable lock file alone (the addon not found), where
  // only the owner's start time tells a dead pid 1 from the live one.
  it.skipIf(!unshareWorks).each([
    ['the kernel lock', {}],
    ['the portable lock file alone', { HAILSTONE_LOCK_ADDON: join(root, 'no-such-addon.node') }],
  ] as const)('SIGKILL, then the same again under unshare --pid (pid 1 both times), with %s: it takes over the dead owner\'s lock at once, 0 duplicates', async (lockName, env) => {
    const dir = join(root, `pidns-${lockName.length}`);
    const ids: bigint[] = [];
    for (let round = 0; round < 3; round++) {
      const child = spawnTracked('unshare', ['--pid', '--fork', '--mount-proc', '--kill-child', process.execPath, CLI_ENTRY, 'serve', '--port', '0', '--state-dir', dir, '--max-lead-ms', '300'], { env });
      const out = collectText(child.stdout!);
      const err = collectText(child.stderr!);
      const port = await readyPort(child, out, err);
      const lock = JSON.parse(readFileSync(join(dir, 'node-0.w0-1.state.lock'), 'utf8'));
      expect(lock.pid).toBe(1);
      if (round > 0) {
        // "At once": from opening the node to serving, measured by the server's own log
        // times — no stale-mutex timeout (10 s) or first-start wait was served.
        const lines = err.text().split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as { time: number; msg: string; firstStart?: boolean });
        const opening = lines.find((l) => l.msg.startsWith('socket bound; opening the node'));
        const started = lines.find((l) => l.msg === 'node started');
        expect(started?.firstStart).toBe(false);
        expect(started!.time - opening!.time, err.text()).toBeLessThan(2000);
      }
      expect(lock.flock).toBe(lockName === 'the kernel lock' && kernelLockAvailability().available);
      const load = new Load([`127.0.0.1:${port}`]);
      await load.more(200);
      ids.push(...(await load.stop()));
      process.kill(-child.pid!, 'SIGKILL');
      await exited(child);
    }
    expect(duplicatesIn(ids)).toEqual([]);
  });
});

describe('--workers 2: the supervisor', () => {
  it('a worker that fails at startup (STATE_LOCKED): the server stops every worker and exits 1 with its one-line error', async () => {
    const dir = join(root, 'sup-locked');
    const holder = await startServe(['--port', '0', '--state-dir', dir, '--max-lead-ms', '300', '--node-id', '9']);
    const t = Date.now();
    const s = spawnServe(['--port', '0', '--state-dir', dir, '--max-lead-ms', '300', '--node-id', '9', '--workers', '2']);
    expect(await s.done).toBe(1);
    expect(Date.now() - t).toBeLessThan(10_000);
    expect(plainLines(s.stderr())).toEqual([expect.stringMatching(/^hailstone: STATE_LOCKED: /)]);
    await waitFor(() => !groupAlive(s.pid), { what: 'every worker to exit' });
    holder.child.kill('SIGTERM');
    expect(await holder.done).toBe(0);
  });

  it('a worker that refuses the clock (CLOCK_FAR_BEHIND): exit 1 with its error', async () => {
    const dir = join(root, 'sup-clock');
    const before = await startServe(['--port', '0', '--state-dir', dir, '--max-lead-ms', '300', '--workers', '2']);
    before.child.kill('SIGTERM');
    expect(await before.done).toBe(0);
    const s = spawnServe(['--port', '0', '--state-dir', dir, '--max-lead-ms', '300', '--workers', '2', '--clock-skew-ms=-3600000']);
    expect(await s.done).toBe(1);
    expect(plainLines(s.stderr())).toEqual([expect.stringMatching(/^hailstone: CLOCK_FAR_BEHIND: /)]);
    await waitFor(() => !groupAlive(s.pid), { what: 'every worker to exit' });
  });

  it.each(TRANSPORTS)('the UDP port is taken (%s): exit 1 with one line', async (transport) => {
    const taken = createSocket('udp4');
    await new Promise<void>((resolve) => taken.bind(0, '127.0.0.1', () => resolve()));
    const port = taken.address().port;
    try {
      const s = spawnServe(['--port', String(port), '--state-dir', join(root, `sup-port-${transport}`), '--max-lead-ms', '300', '--workers', '2', '--transport', transport]);
      expect(await s.done).toBe(1);
      expect(plainLines(s.stderr())).toEqual([expect.stringMatching(new RegExp(`^hailstone: PORT_IN_USE: .*${port}`))]);
      await waitFor(() => !groupAlive(s.pid), { what: 'every worker to exit' });
    } finally {
      taken.close();
    }
  });

  it('SIGTERM while the workers wait out a first start stops the whole tree', async () => {
    const s = spawnServe(['--port', '0', '--state-dir', join(root, 'sup-term'), '--max-lead-ms', '20000', '--workers', '2']);
    await waitFor(() => childPids(s.pid).length === 2 || undefined, { what: 'two workers' });
    await waitFor(() => /first start/.test(s.stderr()) || undefined, { what: 'the first-start wait' });
    const t = Date.now();
    s.child.kill('SIGTERM');
    await s.done;
    await waitFor(() => !groupAlive(s.pid), { what: 'every worker to exit' });
    expect(Date.now() - t).toBeLessThan(10_000);
  });

  it('a worker that keeps crashing is restarted with backoff, and then the server exits 1', { timeout: 60_000 }, async () => {
    const dir = join(root, 'sup-crash');
    const s = await startServe(['--port', '0', '--state-dir', dir, '--max-lead-ms', '300', '--workers', '2']);
    const load = new Load([`127.0.0.1:${s.port}`], { concurrency: 8 });
    let killed = 0;
    while (s.child.exitCode === null && killed < 20) {
      const [victim] = childPids(s.pid);
      if (victim === undefined) break;
      process.kill(victim, 'SIGKILL');
      killed++;
      // Wait for its replacement (a new pid) or for the server to give up.
      await waitFor(() => s.child.exitCode !== null || (childPids(s.pid).length === 2 && !childPids(s.pid).includes(victim)) || undefined, {
        what: 'a replacement worker or the end of the server',
        timeoutMs: 30_000,
      });
    }
    expect(await s.done).toBe(1);
    expect(killed).toBeGreaterThanOrEqual(3);
    expect(s.stderr()).toMatch(/worker \d exited \(.*\); restarting it in \d+ ms/);
    expect(plainLines(s.stderr())).toEqual([expect.stringMatching(/^hailstone: WORKER_CRASH_LOOP: worker \d crashed \d+ times in \d+ s/)]);
    await waitFor(() => !groupAlive(s.pid), { what: 'every worker to exit' });
    expect(duplicatesIn(await load.stop())).toEqual([]);
  });

  it('a restarted worker whose restart fails (its state file damaged meanwhile): restarted with backoff, then exit 1 with its error', { timeout: 60_000 }, async () => {
    const dir = join(root, 'sup-restart-fails');
    const s = await startServe(['--port', '0', '--state-dir', dir, '--max-lead-ms', '300', '--workers', '2', '--node-id', '3']);
    // Damage both workers' state, then kill one: its restart reads a damaged file.
    for (const name of readdirSync(dir).filter((n) => n.endsWith('.state'))) writeFileSync(join(dir, name), 'damaged');
    process.kill(childPids(s.pid)[0]!, 'SIGKILL');
    expect(await s.done).toBe(1);
    expect(plainLines(s.stderr())).toEqual([expect.stringMatching(/^hailstone: STATE_CORRUPT: /)]);
    await waitFor(() => !groupAlive(s.pid), { what: 'every worker to exit' });
  });

  it('ids keep their node and stripe across the supervisor\'s restarts', async () => {
    const dir = join(root, 'sup-ids');
    const s = await startServe(['--port', '0', '--state-dir', dir, '--max-lead-ms', '300', '--workers', '2', '--node-id', '6']);
    const load = new Load([`127.0.0.1:${s.port}`], { concurrency: 8 });
    await load.more(400);
    const victim = childPids(s.pid)[1]!;
    process.kill(victim, 'SIGKILL');
    await waitFor(() => (childPids(s.pid).length === 2 && !childPids(s.pid).includes(victim)) || undefined, { what: 'the replacement worker' });
    await load.more(400);
    const ids = await load.stop();
    expect(duplicatesIn(ids)).toEqual([]);
    expect(new Set(ids.map((id) => decode(id).nodeId))).toEqual(new Set([6]));
    s.child.kill('SIGTERM');
    expect(await s.done).toBe(0);
  });
});
