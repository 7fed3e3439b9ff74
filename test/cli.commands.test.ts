// The operator-facing details of the hailstone command: the version it reports, errors
// that name the flag typed, exit codes that flag duplicate ids, a dead port reported at
// once, key files kept private, and inspect for other layouts. Real processes, real
// sockets, real files.

import { chmodSync, cpSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { compose, parseId } from '../src/codec.js';
import { defineLayout } from '../src/layout.js';
import { readKeyFile } from '../src/protocol/auth.js';
import { serve } from '../src/serve.js';
import { CLI_ENTRY, collectText, exited, runCli, spawnTracked, spawnTs } from './support/child.js';
import { startServe } from './support/serve-process.js';
import { silent } from './support/logger.js';
import { closedPort } from './support/udp.js';

const ROOT = fileURLToPath(new URL('../', import.meta.url));
const root = mkdtempSync(join(tmpdir(), 'hailstone-cmd-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

/** Runs the built command (dist/, as installed) with node. */
async function runBuilt(main: string, args: string[]): Promise<{ code: number | string; stdout: string; stderr: string }> {
  const child = spawnTracked(process.execPath, [main, ...args]);
  const out = collectText(child.stdout!);
  const err = collectText(child.stderr!);
  const code = await exited(child);
  return { code, stdout: out.text(), stderr: err.text() };
}

describe('--version', () => {
  it('the built bin prints the version in package.json, read at run time', async () => {
    const main = join(ROOT, 'dist/cli/main.js');
    expect(existsSync(main), 'dist/ is missing: run `npm run build` first').toBe(true);
    const version = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;
    for (const flag of ['--version', '-V']) {
      const r = await runBuilt(main, [flag]);
      expect(r, flag).toMatchObject({ code: 0, stdout: `${version}\n`, stderr: '' });
    }
    // The same build next to a package.json of another version reports that one: nothing is copied at build time.
    const copy = join(root, 'installed');
    cpSync(join(ROOT, 'dist'), join(copy, 'dist'), { recursive: true });
    symlinkSync(join(ROOT, 'node_modules'), join(copy, 'node_modules'));
    writeFileSync(join(copy, 'package.json'), JSON.stringify({ name: 'hailstone', version: '9.8.7-check', type: 'module' }));
    expect(await runBuilt(join(copy, 'dist/cli/main.js'), ['--version'])).toMatchObject({ code: 0, stdout: '9.8.7-check\n' });
  });

  it('the sources report it too', async () => {
    const version = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;
    const child = spawnTs('src/cli/main.ts', ['-V']);
    const out = collectText(child.stdout!);
    expect(await exited(child)).toBe(0);
    expect(out.text()).toBe(`${version}\n`);
  });
});

describe('a library argument the command line passed on is named by its flag', () => {
  it.each([
    [['serve', '--allow', 'nonsense', '--port', '0'], /^hailstone: --allow: "nonsense" is not a CIDR/],
    // Each worker parses its options: its bad usage comes back through the primary, still exit 2.
    [['serve', '--workers', '2', '--allow', '10.0.0.0/8,nonsense', '--port', '0', '--max-lead-ms', '100', '--log-level', 'silent'], /^hailstone: --allow: "nonsense" is not a CIDR/],
    [['get', '--server', 'bad::x'], /^hailstone: --server: "bad::x" is not host:port/],
    [['get', '--etcd', 'ftp://127.0.0.1:2379'], /^hailstone: --etcd: "ftp:\/\/127\.0\.0\.1:2379": use http:\/\/HOST:PORT, or https:\/\/HOST:PORT for TLS/],
    [['get', '--etcd', 'http://127.0.0.1:2379,https://127.0.0.1:2380'], /^hailstone: --etcd: mixes http:\/\/ and https:\/\/ endpoints/],
    [['get', '--etcd', 'http://127.0.0.1:2379', '--etcd-ca', 'package.json'], /^hailstone: --etcd: "http:\/\/127\.0\.0\.1:2379" is http:\/\/ but a CA or client certificate was given: use https:\/\//],
    [['get', '--etcd', 'https://127.0.0.1:2379', '--etcd-ca', 'package.json'], /^hailstone: --etcd-ca: "package\.json" is not PEM/],
    [['get', '--etcd', 'https://127.0.0.1:2379', '--etcd-ca', 'no-such.pem'], /^hailstone: --etcd-ca: cannot read "no-such\.pem" \(ENOENT\)/],
    [['get', '--etcd', 'https://127.0.0.1:2379', '--etcd-cert', 'package.json'], /^hailstone: --etcd-key: a client certificate needs both its certificate and its key/],
    [['get', '--etcd', 'https://127.0.0.1:2379', '--etcd-user', 'hs'], /^hailstone: --etcd-user hs needs its password: --etcd-password-file FILE, or HAILSTONE_ETCD_PASSWORD/],
    [['serve', '--etcd', 'http://127.0.0.1:1', '--advertise', 'a b:x'], /^hailstone: --advertise: "a b:x" is not HOST:PORT or HOST/],
    [['serve', '--rate-limit', '0'], /argument '0' is invalid\. "0" is not RPS or RPS:BURST/],
  ])('%j: exit 2, the flag named, no argument name, no stack', async (args, message) => {
    const dir = mkdtempSync(join(root, 'usage-'));
    const r = await runCli(args[0] === 'serve' ? [...args, '--state-dir', dir] : args);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(message);
    expect(r.stderr).not.toMatch(/(?<!-)\b(allow|servers|etcd\.endpoints|rateLimit): /);
    expect(r.stderr).not.toMatch(/\n\s+at |INTERNAL/);
  });
});

/** Runs the command under `umask MASK` (a shell sets it, as an operator's would). */
async function runCliWithUmask(mask: string, args: string[]): Promise<{ code: number | string; stdout: string; stderr: string }> {
  const quoted = args.map((a) => `'${a.replace(/'/g, "'\\''")}'`).join(' ');
  const child = spawnTracked('sh', ['-c', `umask ${mask} && exec '${process.execPath}' ${CLI_ENTRY} ${quoted}`]);
  const out = collectText(child.stdout!);
  const err = collectText(child.stderr!);
  const code = await exited(child);
  return { code, stdout: out.text(), stderr: err.text() };
}

const modeOf = (file: string) => statSync(file).mode & 0o777;

describe('keygen --out: a key file only its owner can read', () => {
  it('creates the file with mode 600 whatever the umask, prints nothing, and the key reads back', async () => {
    const file = join(root, 'new.key');
    const r = await runCliWithUmask('000', ['keygen', '--out', file]);
    expect(r).toMatchObject({ code: 0, stdout: '', stderr: '' });
    expect(modeOf(file).toString(8)).toBe('600');
    expect(readFileSync(file, 'utf8')).toMatch(/^[0-9a-f]{64}\n$/);
    expect(readKeyFile(file)).toHaveLength(32);
  });

  it('refuses to replace an existing file (exit 2, the file untouched) unless --force, which leaves mode 600', async () => {
    const file = join(root, 'existing.key');
    writeFileSync(file, 'the old key, in use\n', { mode: 0o644 });
    chmodSync(file, 0o644);
    const refused = await runCli(['keygen', '--out', file]);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(/already exists: .*pass --force to replace it/);
    expect(readFileSync(file, 'utf8')).toBe('the old key, in use\n');
    expect(modeOf(file).toString(8)).toBe('644');

    const forced = await runCliWithUmask('000', ['keygen', '--out', file, '--force']);
    expect(forced).toMatchObject({ code: 0, stdout: '' });
    expect(readFileSync(file, 'utf8')).toMatch(/^[0-9a-f]{64}\n$/);
    expect(modeOf(file).toString(8)).toBe('600');
  });

  it('--force without --out is bad usage; plain keygen still prints a key', async () => {
    expect(await runCli(['keygen', '--force'])).toMatchObject({ code: 2, stdout: '' });
    expect((await runCli(['keygen'])).stdout).toMatch(/^[0-9a-f]{64}\n$/);
  });
});

describe('a key file others can read is warned about', () => {
  it('get prints one warning line for mode 640 and 604, none for 600, and still gets its ids', async () => {
    const file = join(root, 'get.key');
    expect((await runCli(['keygen', '--out', file])).code).toBe(0);
    const server = await serve({ nodeId: 2, stateDir: mkdtempSync(join(root, 'get-key-')), port: 0, key: readKeyFile(file), maxLeadMs: 100, reservationMs: 100, logger: silent });
    try {
      const args = ['get', '--key-file', file, '--server', `127.0.0.1:${server.address.port}`, '--timeout-ms', '10000'];
      const quiet = await runCli(args);
      expect(quiet).toMatchObject({ code: 0, stderr: '' });
      for (const [mode, who] of [[0o640, 'its group'], [0o604, 'every user']] as const) {
        chmodSync(file, mode);
        const warned = await runCli(args);
        expect(warned.code).toBe(0);
        expect(warned.stdout).toMatch(/^\d+\n$/);
        expect(warned.stderr).toBe(`hailstone: warning: the key file ${file} is open to ${who} (mode ${mode.toString(8)}): whoever reads the key can forge replies; chmod 600 ${file}\n`);
      }
    } finally {
      await server.close();
    }
  });

  it('serve logs one warning for a group-readable key file, none for mode 600', async () => {
    const file = join(root, 'serve.key');
    expect((await runCli(['keygen', '--out', file])).code).toBe(0);
    const args = ['--port', '0', '--key-file', file, '--max-lead-ms', '100'];
    const warnings = (stderr: string) => stderr.split('\n').filter((l) => l.includes('chmod 600'));

    const quiet = await startServe([...args, '--state-dir', mkdtempSync(join(root, 'serve-key-'))]);
    quiet.child.kill('SIGTERM');
    expect(await quiet.done).toBe(0);
    expect(warnings(quiet.stderr())).toEqual([]);

    chmodSync(file, 0o640);
    const warned = await startServe([...args, '--state-dir', mkdtempSync(join(root, 'serve-key-'))]);
    warned.child.kill('SIGTERM');
    expect(await warned.done).toBe(0);
    const lines = warnings(warned.stderr());
    expect(lines).toHaveLength(1);
    expect(JSON.parse(lines[0]!)).toMatchObject({ level: 40, keyFile: file, msg: expect.stringMatching(/is open to its group \(mode 640\)/) });
  });
});

describe('inspect: other layouts, and the library\'s id parser', () => {
  async function inspect(args: string[]): Promise<Record<string, unknown>> {
    const r = await runCli(['inspect', ...args]);
    expect(r.code, r.stderr).toBe(0);
    return JSON.parse(r.stdout) as Record<string, unknown>;
  }

  it('--layout T,N,S with --epoch as ms or an ISO date decodes an id of that layout', async () => {
    const epoch = Date.UTC(2020, 0, 1);
    const layout = defineLayout({ timeBits: 40, nodeBits: 12, sequenceBits: 11, epoch });
    const timestamp = Date.UTC(2023, 6, 4, 12, 30, 15, 250);
    const id = compose({ timestamp, nodeId: 3001, sequence: 2001 }, layout);
    const expected = { id: id.toString(), time: '2023-07-04T12:30:15.250Z', timestamp, nodeId: 3001, sequence: 2001 };
    expect(await inspect([id.toString(), '--layout', '40,12,11', '--epoch', '2020-01-01'])).toMatchObject(expected);
    expect(await inspect([id.toString(), '--layout', '40,12,11', '--epoch', String(epoch)])).toMatchObject(expected);
    // Read with the default layout the same id is something else: the flags were used.
    expect(await inspect([id.toString()])).not.toMatchObject({ nodeId: 3001, sequence: 2001 });
  });

  it('--layout time=…,node=…,seq=…,tick=… with an ISO epoch carrying an offset', async () => {
    const layout = defineLayout({ timeBits: 39, nodeBits: 8, sequenceBits: 10, tickMs: 10, epoch: Date.UTC(2020, 0, 1) });
    const id = compose({ timestamp: Date.UTC(2024, 1, 29, 23, 59, 59, 999), nodeId: 200, sequence: 1000 }, layout);
    expect(await inspect([`0x${id.toString(16)}`, '--layout', 'seq=10,time=39,node=8,tick=10', '--epoch', '2020-01-01T01:00:00+01:00'])).toMatchObject({
      id: id.toString(),
      time: '2024-02-29T23:59:59.990Z', // the start of its 10 ms tick
      nodeId: 200,
      sequence: 1000,
    });
  });

  it.each([
    [['--layout', '70,10,12'], /^hailstone: --layout time: must be an integer from 1 to 61, got 70$/m],
    [['--layout', '41,10,13'], /^hailstone: --layout: timeBits \+ nodeBits \+ sequenceBits is 64, at most 63 fit/m],
    [['--layout', 'time=41,bogus=1'], /"bogus=1" is not a field of a layout: give "TIME,NODE,SEQ" bits/],
    [['--layout', 'time=41,time=40'], /time is given twice/],
    [['--epoch', '2025-01-01T00:00:00'], /add Z \(UTC\) or an offset/],
    [['--epoch', 'yesterday'], /give ms since the Unix epoch .* or an ISO date/],
  ])('inspect 1 %j: exit 2 naming the flag', async (flags, message) => {
    const r = await runCli(['inspect', '1', ...flags]);
    expect(r).toMatchObject({ code: 2, stdout: '' });
    expect(r.stderr).toMatch(message);
  });

  it('reads an id exactly as the library\'s parseId does: leading zeros, 0X, and the same refusals', async () => {
    for (const text of ['000000123', '0X7B', '0x00000000000007b']) {
      expect((await inspect([text])).id, text).toBe(parseId(text).toString());
    }
    for (const text of ['1e3', '+1']) {
      expect(() => parseId(text)).toThrow(/is not an id/);
      const r = await runCli(['inspect', text]);
      expect(r.code, text).toBe(2);
      expect(r.stderr).toContain(`hailstone: ${JSON.stringify(text)} is not an id: give it in decimal digits or hex (0x…)`);
    }
  });
});

describe('get against a port with nothing listening', () => {
  it('says so at once: UNREACHABLE naming the address, exit 1, far within a 30 s timeout', async () => {
    const port = await closedPort();
    const started = Date.now();
    const r = await runCli(['get', '--server', `127.0.0.1:${port}`, '--timeout-ms', '30000']);
    const ms = Date.now() - started;
    expect(r).toMatchObject({ code: 1, stdout: '' });
    expect(r.stderr).toMatch(new RegExp(`^hailstone: UNREACHABLE: nothing listening on 127\\.0\\.0\\.1:${port} \\(ICMP port unreachable\\): start the server`));
    expect(r.stderr.split('\n').filter((l) => l !== '')).toHaveLength(1);
    // Starting the process is most of it; the call itself takes milliseconds.
    expect(ms).toBeLessThan(10_000);
  });
});
