// What an operator meets first: the command line parses what it documents, startup
// failures are one line and exit 1 at once, a closed stdout or a read-only disk at
// shutdown does not crash the server, `npm start` passes signals on, and /healthz tells
// the truth while the node cannot issue. Real processes, real sockets, real HTTP.

import { spawnSync } from 'node:child_process';
import { createServer } from 'node:http';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { HailstoneError, createClient, openNode, serve } from '../src/index.js';
import { serveProgram } from '../src/cli/serve.js';
import type { NodeSnapshot } from '../src/server/health.js';
import { serveMetrics } from '../src/server/metrics.js';
import { CLI_ENTRY, childPids, collectText, exited, readyPort, runCli, spawnFixture, spawnTracked, waitFor } from './support/child.js';
import { requirePrerequisite } from './support/prerequisite.js';
import { ManualClock } from './support/clock.js';
import { spawnServe, startServe } from './support/serve-process.js';
import { silent } from './support/logger.js';

const root = mkdtempSync(join(tmpdir(), 'hailstone-cli-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

/** stderr without the JSON log lines: what a person reads. */
function plainLines(text: string): string[] {
  return text.split('\n').filter((l) => l !== '' && !l.startsWith('{'));
}

interface HealthBody {
  status: string;
  nodeId?: number;
  reason?: string;
  retryAfterMs?: number;
}

async function healthz(port: number): Promise<{ status: number; body: HealthBody; retryAfter: string | null }> {
  const res = await fetch(`http://127.0.0.1:${port}/healthz`);
  return { status: res.status, body: (await res.json()) as HealthBody, retryAfter: res.headers.get('retry-after') };
}

describe('the command line parses what it documents', () => {
  it('negative numbers follow their flag as a separate argument, as in the clock drills', async () => {
    const s = await startServe(['--port', '0', '--state-dir', join(root, 'neg'), '--max-lead-ms', '100', '--clock-skew-ms', '-3000']);
    expect(s.stderr()).not.toMatch(/ambiguous/);
    s.child.kill('SIGTERM');
    expect(await s.done).toBe(0);
  });

  it('every serve option has an environment variable, and --help names it', async () => {
    const options = serveProgram(async () => 0).options.filter((o) => o.long !== '--help');
    // Read by hand: commander would take HAILSTONE_RESET_STATE=0 as set.
    const byHand: Record<string, string> = { '--reset-state': 'HAILSTONE_RESET_STATE', '--no-udp': 'HAILSTONE_NO_UDP' };
    for (const o of options) {
      if (byHand[o.long!] !== undefined) continue;
      expect(o.envVar, o.long).toMatch(/^HAILSTONE_[A-Z_]+$/);
    }
    const help = await runCli(['serve', '--help']);
    expect(help.code).toBe(0);
    for (const o of options) expect(help.stdout.replace(/\s+/g, ' '), o.long).toContain(byHand[o.long!] ?? o.envVar!);
    expect(help.stdout).toContain('node=N workers=W transport=T');
    expect((await runCli(['get', '--help'])).stdout).toContain('--timeout-ms');
  });

  it('HAILSTONE_RESET_STATE=1 starts over from a damaged state file; =0 does not; anything else is bad usage', async () => {
    const dir = join(root, 'reset');
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'node-0.w0-1.state'), 'not a state record');
    const refused = await runCli(['serve', '--port', '0', '--state-dir', dir], { HAILSTONE_RESET_STATE: '0' });
    expect(refused.code).toBe(1);
    expect(plainLines(refused.stderr)).toEqual([expect.stringMatching(/^hailstone: STATE_CORRUPT: /)]);
    const bad = await runCli(['serve', '--port', '0', '--state-dir', dir], { HAILSTONE_RESET_STATE: 'maybe' });
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/HAILSTONE_RESET_STATE must be 1 or 0/);
    const s = await startServe(['--port', '0', '--state-dir', dir, '--max-lead-ms', '100'], { HAILSTONE_RESET_STATE: '1' });
    s.child.kill('SIGTERM');
    expect(await s.done).toBe(0);
  });

  it.each([
    [['serve', '--max-lead-ms', '0'], /option '--max-lead-ms <ms>' argument '0' is invalid\. It must be an integer from 50 to 86400000/],
    [['serve', '--reservation-ms', '1'], /option '--reservation-ms <ms>' argument '1' is invalid\. It must be an integer from 50/],
    [['serve', '--max-lead-ms', '100', '--reservation-ms', '200'], /--reservation-ms \(200\) must not exceed --max-lead-ms \(100\)/],
    [['serve', '--port', '99999'], /option '--port <p>' argument '99999' is invalid/],
    [['serve', '--node-id', '-1'], /option '--node-id <n\|ordinal>' argument '-1' is invalid\. It must be an integer from 0 to 1023, or ordinal/],
    [['keygen', '5'], /too many arguments for 'keygen'/],
    [['keygen', '--bogus'], /unknown option '--bogus'/],
    [['inspect', '-5'], /"-5" is not an id: give it in decimal .* or hex \(0x…\)/],
    [['inspect', 'zz'], /"zz" is not an id/],
    [['get', '--server', '127.0.0.1:99999'], /port 99999 is out of range \(1 to 65535\)/],
    [['bogus'], /unknown command 'bogus'/],
  ])('%j: exit 2 naming what is wrong, nothing on stdout', async (args, message) => {
    const r = await runCli(args);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(message);
    expect(r.stderr).not.toMatch(/\n\s+at /); // no stack trace
  });

  it('keygen --help prints help, not a key; keygen prints a 64-digit hex key', async () => {
    const help = await runCli(['keygen', '--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/^Usage: hailstone keygen/);
    expect(help.stdout).not.toMatch(/^[0-9a-f]{64}$/m);
    expect((await runCli(['keygen'])).stdout).toMatch(/^[0-9a-f]{64}\n$/);
  });

  it('get --format hex prints what inspect reads back (0x… and the bare 16 digits); --format json prints one array', async () => {
    const s = await startServe(['--port', '0', '--state-dir', join(root, 'formats'), '--max-lead-ms', '100', '--node-id', '9']);
    const server = `127.0.0.1:${s.port}`;
    const hex = await runCli(['get', '--format', 'hex', '--server', server]);
    expect(hex.stdout).toMatch(/^0x[0-9a-f]{16}\n$/);
    const id = BigInt(hex.stdout.trim());
    for (const text of [hex.stdout.trim(), hex.stdout.trim().slice(2), id.toString()]) {
      const r = await runCli(['inspect', text]);
      expect(r.code, text).toBe(0);
      expect(JSON.parse(r.stdout)).toMatchObject({ id: id.toString(), hex: hex.stdout.trim(), nodeId: 9 });
    }
    const json = await runCli(['get', '-n', '3', '--format', 'json', '--server', server]);
    const ids = JSON.parse(json.stdout) as string[];
    expect(ids).toHaveLength(3);
    expect(ids.every((v) => /^\d+$/.test(v))).toBe(true);
    s.child.kill('SIGTERM');
    expect(await s.done).toBe(0);
  });
});

describe('startup failures: one line, exit 1, at once', () => {
  it('the metrics port taken: METRICS_PORT_IN_USE before the first-start wait, the state lock released', async () => {
    const taken = createServer();
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', () => resolve()));
    const port = (taken.address() as { port: number }).port;
    const dir = join(root, 'metrics-taken');
    const started = Date.now();
    const r = await runCli(['serve', '--port', '0', '--state-dir', dir, '--max-lead-ms', '20000', '--metrics', `127.0.0.1:${port}`]);
    await new Promise<void>((resolve) => taken.close(() => resolve()));
    expect(r.code).toBe(1);
    expect(plainLines(r.stderr)).toEqual([expect.stringMatching(/^hailstone: METRICS_PORT_IN_USE: the metrics port 127\.0\.0\.1:\d+ /)]);
    expect(Date.now() - started).toBeLessThan(10_000); // not after the 20 s first start
    // Nothing held: the same node starts on that dir at once.
    const s = await startServe(['--port', '0', '--state-dir', dir, '--max-lead-ms', '100']);
    s.child.kill('SIGTERM');
    expect(await s.done).toBe(0);
  });

  const unusable: [string, () => string, RegExp][] = [
    ['a file where the state dir should be', () => {
      const file = join(root, 'a-file');
      writeFileSync(file, 'x');
      return file;
    }, /EEXIST .*a file stands where a directory must be/],
    ['a directory where the state file should be', () => {
      const dir = join(root, 'dir-as-state');
      mkdirSync(join(dir, 'node-0.w0-1.state'), { recursive: true });
      return dir;
    }, /EISDIR .*a directory stands where a state or lock file must be/],
    ['a state dir under /proc (used to spin at 100% CPU)', () => '/proc/hailstone-state', /ENOENT .*not \/proc or \/sys/],
  ];
  it.each(unusable)('%s: STATE_DIR_UNUSABLE with what to do', async (_, dirOf, message) => {
    const r = await runCli(['serve', '--port', '0', '--state-dir', dirOf(), '--max-lead-ms', '100']);
    expect(r.code).toBe(1);
    const lines = plainLines(r.stderr);
    expect(lines).toEqual([expect.stringMatching(/^hailstone: STATE_DIR_UNUSABLE: state dir /)]);
    expect(lines[0]).toMatch(message);
  });

  const mountNamespaces = process.platform === 'linux' && spawnSync('unshare', ['--mount', 'true']).status === 0;
  requirePrerequisite(mountNamespaces, 'mount namespaces (unshare --mount, as root) to mount a read-only volume over a state dir');
  it.skipIf(!mountNamespaces)('read-only storage: STATE_DIR_UNUSABLE at startup (EROFS); a read-only volume mounted over it under a running server: SIGTERM still stops it cleanly', async () => {
    const dir = join(root, 'ro');
    mkdirSync(dir, { recursive: true });
    // In a mount namespace of its own: a read-only bind mount of the dir, seen by this child only.
    const script = [
      `mount --bind ${dir} ${dir} && mount -o remount,bind,ro ${dir}`,
      `${process.execPath} ${CLI_ENTRY} serve --port 0 --state-dir ${dir} --max-lead-ms 100; echo "exit=$?"`,
    ].join(' && ');
    const child = spawnTracked('unshare', ['--mount', 'sh', '-c', script]);
    const out = collectText(child.stdout!);
    const err = collectText(child.stderr!);
    await exited(child);
    expect(out.text()).toContain('exit=1');
    expect(plainLines(err.text())).toEqual([expect.stringMatching(/^hailstone: STATE_DIR_UNUSABLE: .*EROFS .*read-only/)]);

    const running = [
      `mount --bind ${dir} ${dir}`,
      `(${process.execPath} ${CLI_ENTRY} serve --port 0 --state-dir ${dir} --max-lead-ms 100 & echo "pid=$!"; wait $!; echo "exit=$?")`,
    ].join(' && ');
    const child2 = spawnTracked('unshare', ['--mount', '--propagation', 'private', 'sh', '-c', running]);
    const out2 = collectText(child2.stdout!);
    const err2 = collectText(child2.stderr!);
    await readyPort(child2, out2, err2);
    const pid = Number(/pid=(\d+)/.exec(out2.text())![1]);
    // A read-only volume mounted over the dir inside the child's namespace (a dir with files
    // open for writing cannot itself be remounted read-only), then stop the server.
    const empty = join(root, 'ro-empty');
    mkdirSync(empty, { recursive: true });
    const remount = spawnSync('nsenter', ['-t', String(pid), '-m', 'sh', '-c', `mount --bind ${empty} ${dir} && mount -o remount,bind,ro ${dir}`], { encoding: 'utf8' });
    expect(remount.status, remount.stderr).toBe(0);
    process.kill(pid, 'SIGTERM');
    await exited(child2);
    expect(out2.text()).toContain('hailstone stopped');
    expect(out2.text()).toContain('exit=0');
  });
});

describe('signals and pipes', () => {
  it('stdout closed by its reader (serve | head -1), then SIGTERM: stops cleanly, exit 0', async () => {
    const s = spawnServe(['--port', '0', '--state-dir', join(root, 'epipe'), '--max-lead-ms', '100']);
    await waitFor(() => /hailstone listening/.test(s.stdout()) || undefined, { what: 'the ready line', child: s.child, stderr: { text: s.stderr } });
    s.child.stdout!.destroy();
    s.child.kill('SIGTERM');
    expect(await s.done).toBe(0);
    expect(s.stderr()).not.toMatch(/EPIPE/);
  });

  it('SIGTERM to `npm start` reaches the server: it stops, nothing is left running', async () => {
    const child = spawnTracked('npm', ['start', '--silent'], {
      env: { HAILSTONE_PORT: '0', HAILSTONE_STATE_DIR: join(root, 'npm-start'), HAILSTONE_MAX_LEAD_MS: '100' },
    });
    const out = collectText(child.stdout!);
    const err = collectText(child.stderr!);
    await readyPort(child, out, err);
    const tree = [child.pid!, ...childPids(child.pid!)];
    process.kill(child.pid!, 'SIGTERM');
    await exited(child);
    await waitFor(() => tree.every((pid) => !alive(pid)) || undefined, { what: 'npm and the server to exit' });
    expect(out.text()).toContain('hailstone stopped');
  });
});

/**
 * The top-level keys of one JSON object, in order, duplicates included (JSON.parse would
 * keep only the last of a repeated key).
 */
function topLevelKeys(text: string): string[] {
  const keys: string[] = [];
  let depth = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === '"') {
      let end = i + 1;
      while (text[end] !== '"') end += text[end] === '\\' ? 2 : 1;
      let next = end + 1;
      while (text[next] === ' ') next++;
      if (depth === 1 && text[next] === ':') keys.push(JSON.parse(text.slice(i, end + 1)) as string);
      i = end;
    } else if (c === '{' || c === '[') depth++;
    else if (c === '}' || c === ']') depth--;
  }
  return keys;
}

/** Checks every JSON line of a log: pino's shape, and no key twice. Returns the parsed lines. */
function checkLogLines(stderr: string): Record<string, unknown>[] {
  const lines = stderr.split('\n').filter((l) => l.startsWith('{'));
  expect(lines.length).toBeGreaterThan(0);
  return lines.map((line) => {
    const keys = topLevelKeys(line);
    expect(keys.filter((k, i) => keys.indexOf(k) !== i), line).toEqual([]);
    const parsed = JSON.parse(line) as Record<string, unknown>;
    expect(parsed, line).toMatchObject({ level: expect.any(Number), time: expect.any(Number), pid: expect.any(Number), hostname: expect.any(String), msg: expect.any(String) });
    expect(parsed, line).not.toHaveProperty('node');
    return parsed;
  });
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('health tells the truth', () => {
  it('the clock stepped back past the lead: /healthz 503 with the reason and retry-after while every request is refused, 200 again once it can issue', async () => {
    const clock = new ManualClock(Date.now());
    const node = await openNode({ nodeId: 3, stateDir: join(root, 'health-clock'), clock: clock.read, maxLeadMs: 200, reservationMs: 100, logger: silent, sleep: async (ms) => clock.advance(ms) });
    const server = await serve({ node, port: 0, logger: silent });
    const snapshot = async (): Promise<NodeSnapshot> => ({ workers: [{ index: 0, stats: server.stats(), node: node.status() }], workerRestarts: 0, expectedWorkers: 1 });
    const metrics = await serveMetrics('127.0.0.1', 0, snapshot);
    try {
      node.nextId();
      expect((await healthz(metrics.address.port)).status).toBe(200);
      clock.advance(-5000);
      expect(() => node.nextId()).toThrow(HailstoneError);
      const down = await healthz(metrics.address.port);
      expect(down.status).toBe(503);
      expect(down.body.reason).toMatch(/cannot issue now/);
      expect(down.body.retryAfterMs).toBeGreaterThan(4000);
      expect(Number(down.retryAfter)).toBeGreaterThanOrEqual(4);
      clock.advance(5000);
      node.nextId();
      expect((await healthz(metrics.address.port)).status).toBe(200);
    } finally {
      await metrics.close();
      await server.close();
      await node.close();
    }
  });

  it('waiting at startup for a clock behind the state: the port answers UNAVAILABLE with the real retry-after, /healthz 503 "waiting for the clock", then it serves', { timeout: 60_000 }, async () => {
    const dir = join(root, 'startup-wait');
    const first = await startServe(['--port', '0', '--state-dir', dir, '--max-lead-ms', '100']);
    first.child.kill('SIGTERM');
    expect(await first.done).toBe(0);
    // 8 s behind: long enough that a loaded machine still finds it waiting when it asks.
    const s = spawnServe(['--port', '0', '--state-dir', dir, '--max-lead-ms', '100', '--clock-skew-ms', '-8000', '--max-startup-wait-ms', '20000', '--metrics', '127.0.0.1:0']);
    const bound = await waitFor(() => /"port":(\d+)[^\n]*socket bound/.exec(s.stderr()) ?? undefined, { what: 'the socket to be bound', child: s.child, stderr: { text: s.stderr } });
    const metricsPort = Number((await waitFor(() => /"metrics":"http:\/\/127\.0\.0\.1:(\d+)"/.exec(s.stderr()) ?? undefined, { what: 'the metrics port', child: s.child, stderr: { text: s.stderr } }))[1]);
    const client = createClient({ servers: [`127.0.0.1:${bound[1]}`], deadlineMs: 300 });
    const refusal = await client.nextId().catch((e: unknown) => e);
    expect(refusal).toMatchObject({ code: 'UNAVAILABLE' });
    expect((refusal as HailstoneError).retryAfterMs).toBeGreaterThan(500);
    const h = await healthz(metricsPort);
    expect(h.status).toBe(503);
    expect(h.body.nodeId).toBe(0);
    expect(h.body.reason).toMatch(/^node 0: starting: waiting for the clock/);
    await readyPort(s.child, { text: s.stdout }, { text: s.stderr });
    const c2 = createClient({ servers: [`127.0.0.1:${bound[1]}`] });
    await c2.nextId();
    // Healthy once its reservation is ahead of the clock: at once when quiet; with a 100 ms
    // lead on a loaded machine, after the renewal in flight.
    const ok = await waitFor(async () => { const h = await healthz(metricsPort); return h.status === 200 ? h : undefined; }, { what: '/healthz ok', child: s.child, timeoutMs: 10_000 });
    expect(ok).toMatchObject({ status: 200, body: { status: 'ok', nodeId: 0 } });
    await client.close();
    await c2.close();
    s.child.kill('SIGTERM');
    expect(await s.done).toBe(0);
  });

  it('--workers 2: /healthz names the node id and the worker stripe that is not ready, and the node id once healthy', { timeout: 60_000 }, async () => {
    const s = spawnServe(['--port', '0', '--state-dir', join(root, 'health-workers'), '--workers', '2', '--node-id', '4', '--max-lead-ms', '3000', '--metrics', '127.0.0.1:0']);
    const metricsPort = Number((await waitFor(() => /"metrics":"http:\/\/127\.0\.0\.1:(\d+)"/.exec(s.stderr()) ?? undefined, { what: 'the metrics port', child: s.child, stderr: { text: s.stderr } }))[1]);
    // Each worker opens its node, then waits out one lead window (3 s) on its first start.
    const starting: string[] = [];
    const waiting = await waitFor(
      async () => {
        const h = await healthz(metricsPort);
        if (/starting/.test(h.body.reason ?? '')) starting.push(h.body.reason!);
        return /first start/.test(h.body.reason ?? '') ? h : undefined;
      },
      { what: '/healthz to report a worker waiting out its first start', child: s.child, stderr: { text: s.stderr } },
    );
    for (const reason of starting) expect(reason).toMatch(/^node 4, worker [01] of 2: starting: /);
    expect(waiting.status).toBe(503);
    expect(waiting.body.nodeId).toBe(4);
    expect(waiting.body.reason).toMatch(/^node 4, worker [01] of 2: starting: first start: waiting one lead window \(3000 ms\)/);
    await readyPort(s.child, { text: s.stdout }, { text: s.stderr });
    // Serving; healthy once both workers' reservations are ahead of the clock — at once on a
    // quiet machine, a renewal later on a loaded one (health says so meanwhile: that is true).
    let last: Awaited<ReturnType<typeof healthz>> | undefined;
    await waitFor(async () => ((last = await healthz(metricsPort)).status === 200 ? true : undefined), { what: '/healthz to say ok', timeoutMs: 10_000, child: s.child });
    expect(last).toMatchObject({ status: 200, body: { status: 'ok', nodeId: 4 } });
    s.child.kill('SIGTERM');
    expect(await s.done).toBe(0);
  });
});

describe('log lines', () => {
  it('the key scanner sees a repeated key that JSON.parse hides', () => {
    expect(topLevelKeys('{"a":1,"b":{"a":2,"c":[{"a":3}]},"s":"x\\"a\\":","a":4}')).toEqual(['a', 'b', 's', 'a']);
  });

  it('serve --workers 2: every line of the primary and the workers is one pino shape, with no key twice', { timeout: 60_000 }, async () => {
    const s = await startServe(['--port', '0', '--state-dir', join(root, 'log-shape'), '--workers', '2', '--node-id', '6', '--max-lead-ms', '100']);
    const client = createClient({ servers: [`127.0.0.1:${s.port}`] });
    await client.nextIds(10);
    await client.close();
    s.child.kill('SIGTERM');
    expect(await s.done).toBe(0);
    const lines = checkLogLines(s.stderr());
    // The workers' own lines (their nodes starting) name the node and the worker, once each.
    const started = lines.filter((l) => l.msg === 'node started');
    expect(started.map((l) => l.worker).sort()).toEqual([0, 1]);
    for (const l of started) expect(l).toMatchObject({ nodeId: 6, level: 30 });
    expect(started[0]!.pid).not.toBe(started[1]!.pid);
    // The primary's line about a worker names the worker's pid apart from its own.
    const serving = lines.filter((l) => /^worker \d is serving$/.test(String(l.msg)));
    expect(serving).toHaveLength(2);
    for (const l of serving) expect(l.workerPid).not.toBe(l.pid);
  });

  it("the library's default logger writes the same pino shape", async () => {
    // A first start logs a warning (it waits one lead window) through stderrLogger.
    const child = spawnFixture('node-child.ts', [join(root, 'library-log'), '8'], { HAILSTONE_MAX_LEAD_MS: '200' });
    const err = collectText(child.stderr!);
    await waitFor(() => /READY/.test(err.text()) || undefined, { what: 'the node to open', child, stderr: err });
    child.kill('SIGTERM');
    await exited(child);
    const lines = checkLogLines(err.text());
    expect(lines[0]).toMatchObject({ level: 40, nodeId: 8, worker: 0, msg: expect.stringMatching(/^no state: first start of node 8/) });
  });
});
