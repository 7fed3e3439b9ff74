// The hailstone command as real processes on loopback: serve, get, inspect, bad flags,
// several workers, SIGKILL under load with clock steps, SIGTERM under load.

import type { ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createClient, decode, HailstoneError } from '../src/index.js';
import { decodeRecord } from '../src/node/state-record.js';
import { childPids, collectText, exited, readyPort, runCli, sleep, spawnCli, waitFor } from './support/child.js';
import { prng, testSeed } from './support/seed.js';
import { TRANSPORTS } from './support/udp.js';

const root = mkdtempSync(join(tmpdir(), 'hailstone-cli-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

interface Running {
  child: ChildProcess;
  port: number;
  stdout: () => string;
  stderr: () => string;
  done: Promise<number | string>;
}

async function startServe(args: string[], env: Record<string, string> = {}): Promise<Running> {
  const child = spawnCli(['serve', ...args], env);
  const out = collectText(child.stdout!);
  const err = collectText(child.stderr!);
  const done = exited(child);
  const port = await readyPort(child, out, err);
  return { child, port, stdout: out.text, stderr: err.text, done };
}

describe('hailstone command', () => {
  it('serve / get / inspect end to end, and SIGTERM stops it cleanly', async () => {
    const dir = join(root, 'e2e');
    const s = await startServe(['--port', '0', '--state-dir', dir, '--max-lead-ms', '300'], { HAILSTONE_NODE_ID: '12' });
    expect(s.stdout()).toMatch(new RegExp(`^hailstone listening on udp://127\\.0\\.0\\.1:${s.port} node=12 workers=1 transport=${TRANSPORTS.at(-1)}\\n$`));
    const server = `127.0.0.1:${s.port}`;

    const dec = await runCli(['get', '-n', '3', '--server', server]);
    expect(dec.code).toBe(0);
    const ids = dec.stdout.trim().split('\n');
    expect(ids).toHaveLength(3);
    expect(new Set(ids).size).toBe(3);
    expect(ids.every((id) => decode(id).nodeId === 12)).toBe(true);

    const hex = await runCli(['get', '--format', 'hex'], { HAILSTONE_SERVERS: server });
    expect(hex.stdout).toMatch(/^0x[0-9a-f]{16}\n$/);
    const json = await runCli(['get', '-n', '2', '--format', 'json', '--server', server]);
    expect((JSON.parse(json.stdout) as string[]).every((v) => /^\d+$/.test(v))).toBe(true);

    const inspected = await runCli(['inspect', ids[0]!]);
    expect(inspected.code).toBe(0);
    const fields = JSON.parse(inspected.stdout);
    expect(fields).toMatchObject({ id: ids[0], nodeId: 12, sequence: decode(ids[0]!).sequence });
    expect(new Date(fields.time).getTime()).toBe(decode(ids[0]!).timestamp);

    s.child.kill('SIGTERM');
    expect(await s.done).toBe(0);
    expect(s.stdout()).toMatch(/hailstone stopped\n$/);
    expect(readdirSync(dir).filter((n) => n.endsWith('.lock'))).toEqual([]);
    expect(() => decodeRecord(readFileSync(join(dir, 'node-12.w0-1.state')))).not.toThrow();
  });

  it('bad flags and bad input: a clear message and exit code 2; no server: exit code 1', async () => {
    const cases: [string[], RegExp][] = [
      [['serve', '--port', 'abc'], /option '--port <p>' argument 'abc' is invalid\. It must be an integer from 0 to 65535/],
      [['serve', '--node-id', '1024'], /'--node-id <n\|ordinal>' argument '1024' is invalid\. It must be an integer from 0 to 1023, or ordinal/],
      [['serve', '--workers', '0'], /'--workers <n>' argument '0' is invalid\. It must be an integer/],
      [['serve', '--bogus'], /unknown option '--bogus'/],
      [['serve', '--host', 'no-such-host.invalid', '--state-dir', join(root, 'bad')], /--host: "no-such-host.invalid" does not resolve to an address/],
      [['serve', '--allow', '10.0.0.0/99', '--port', '0', '--state-dir', join(root, 'bad')], /not a CIDR/],
      [['serve', '--key-file', join(root, 'missing')], /cannot read the key file/],
      [['serve', '--transport', 'tcp'], /'--transport <t>' argument 'tcp' is invalid\. Allowed choices are auto, native, dgram/],
      [['get', '-n', '0'], /'-n, --count <n>' argument '0' is invalid\. It must be an integer from 1/],
      [['get', '--format', 'xml'], /Allowed choices are dec, hex, json/],
      [['get', '--server', 'nope'], /is not host:port/],
      [['inspect'], /missing required argument 'id'/],
      [['inspect', '-5'], /"-5" is not an id/],
      [['inspect', '99999999999999999999'], /the id must be from 0 to/],
      [['frobnicate'], /unknown command 'frobnicate'/],
    ];
    const results = await Promise.all(cases.map(([args]) => runCli(args)));
    results.forEach((r, i) => {
      expect(r.code, cases[i]![0].join(' ')).toBe(2);
      expect(r.stderr, cases[i]![0].join(' ')).toMatch(cases[i]![1]);
      expect(r.stderr).toMatch(/^hailstone: /);
    });
    for (const command of ['serve', 'get', 'inspect']) {
      const help = await runCli([command, '--help']);
      expect(help.code).toBe(0);
      expect(help.stdout).toMatch(new RegExp(`^Usage: hailstone ${command}`));
    }
    const unreachable = await runCli(['get', '--server', '127.0.0.1:9', '--timeout-ms', '300']);
    expect(unreachable.code).toBe(1);
    // UNREACHABLE when the kernel answers ICMP port unreachable; TIMEOUT where something takes the datagram silently.
    expect(unreachable.stderr).toMatch(/hailstone: (UNREACHABLE: nothing listening on|TIMEOUT: no ids from) 127\.0\.0\.1:9/);
  });

  it.each(TRANSPORTS)('--workers 2 --transport %s: one port, ids unique across the workers, both stripes serving; a killed worker is restarted', async (transport) => {
    const dir = join(root, `workers-${transport}`);
    const s = await startServe(['--port', '0', '--state-dir', dir, '--workers', '2', '--node-id', '5', '--max-lead-ms', '300', '--transport', transport]);
    expect(s.stdout()).toMatch(new RegExp(`workers=2 transport=${transport}\\n$`));
    // Several client sockets: with native workers the kernel spreads sources across the
    // workers' sockets (SO_REUSEPORT hashes source address and port), so one socket alone
    // would reach one worker. 16 sockets all on one worker: odds 2^-15.
    const clients = Array.from({ length: 16 }, () => createClient({ servers: [`127.0.0.1:${s.port}`] }));
    const all: bigint[] = [];
    for (let i = 0; i < 25; i++) all.push(...(await Promise.all(clients.map((c) => c.nextIds(20)))).flat());
    expect(new Set(all).size).toBe(all.length);
    const stripes = new Set(all.map((id) => decode(id, { workers: 2 }).worker));
    expect(stripes).toEqual(new Set([0, 1]));

    // Kill one worker (a child of the server we started): the primary restarts it.
    const children = childPids(s.child.pid!);
    expect(children).toHaveLength(2);
    process.kill(children[0]!, 'SIGKILL');
    await waitFor(() => /worker \d is serving/.test(s.stderr().split('restarting it').slice(1).join('')), {
      what: 'the restarted worker to serve',
      child: s.child,
      stderr: { text: s.stderr },
    });
    const after = (await Promise.all(clients.map((c) => c.nextIds(25)))).flat();
    for (const id of after) expect(all.includes(id)).toBe(false);
    expect(s.stderr()).toMatch(/worker \d exited \(killed by SIGKILL\); restarting it/);
    const now = childPids(s.child.pid!);
    expect(now).toHaveLength(2);
    expect(now).not.toContain(children[0]);
    await Promise.all(clients.map((c) => c.close()));
    s.child.kill('SIGTERM');
    expect(await s.done).toBe(0);
  });

  it('an addon that does not load: auto falls back to dgram and says so once; --transport native refuses to start', async () => {
    const env = { HAILSTONE_NATIVE_ADDON: join(root, 'no-such-addon.node') };
    const dir = join(root, 'fallback');
    for (const workers of ['1', '2']) {
      const s = await startServe(['--port', '0', '--state-dir', dir, '--max-lead-ms', '300', '--workers', workers], env);
      expect(s.stdout()).toMatch(/transport=dgram\n$/);
      const client = createClient({ servers: [`127.0.0.1:${s.port}`] });
      expect((await client.nextIds(5)).length).toBe(5);
      await client.close();
      s.child.kill('SIGTERM');
      expect(await s.done).toBe(0);
      expect(s.stderr().match(/native UDP transport unavailable \(.*no-such-addon\.node did not load/g)).toHaveLength(1);
    }
    const refused = await runCli(['serve', '--port', '0', '--state-dir', join(root, 'refused'), '--transport', 'native'], env);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/hailstone: NATIVE_UNAVAILABLE: the native UDP transport is unavailable: .*no-such-addon\.node did not load/);
    // Refused before the node opened: no state was written.
    expect(existsSync(join(root, 'refused'))).toBe(false);
  });

  it.each(TRANSPORTS)('SIGKILL under load (%s), restarted with the clock 0..5 s behind: zero duplicates among all ids clients received', { timeout: 120_000 }, async (transport) => {
    const random = prng(testSeed(`service-sigkill-${transport}`));
    const dir = join(root, `kill-${transport}`);
    let port = 0;
    const seen = new Set<bigint>();
    let received = 0;
    let maxBefore = -1n;
    for (let k = 0; k < 8; k++) {
      const skew = k === 0 ? 0 : -Math.floor(random() * 5000);
      // The first start waits one lead window: keep it short; later starts need the lead to absorb the steps.
      const lead = k === 0 ? '300' : '6000';
      const s = await startServe(['--port', String(port), '--state-dir', dir, '--max-lead-ms', lead, '--reservation-ms', '200', '--transport', transport], {
        HAILSTONE_CLOCK_SKEW_MS: String(skew),
      });
      port = s.port;
      const client = createClient({ servers: [`127.0.0.1:${port}`], timeoutMs: 50, deadlineMs: 500 });
      let stop = false;
      const got: bigint[] = [];
      const load = Array.from({ length: 4 }, async () => {
        while (!stop) {
          try {
            got.push(...(await client.nextIds(1 + Math.floor(random() * 100))));
          } catch (error) {
            if (!(error instanceof HailstoneError)) throw error;
          }
        }
      });
      await sleep(100 + Math.floor(random() * 300));
      s.child.kill('SIGKILL');
      expect(await s.done).toBe('SIGKILL');
      // No new calls; the ones in flight end by their deadline.
      stop = true;
      await Promise.all(load);
      await client.close();
      for (const id of got) {
        expect(id > maxBefore, `restart ${k} (skew ${skew}) issued ${id} below an earlier id`).toBe(true);
      }
      for (const id of got) seen.add(id);
      received += got.length;
      maxBefore = got.reduce((a, b) => (b > a ? b : a), maxBefore);
    }
    expect(received).toBeGreaterThan(1000);
    expect(seen.size).toBe(received);
    expect(existsSync(join(dir, 'node-0.w0-1.state'))).toBe(true);
  });
});
