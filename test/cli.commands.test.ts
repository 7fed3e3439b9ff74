// The operator-facing details of the hailstone command: the version it reports, errors
// that name the flag typed, exit codes that flag duplicate ids, a dead port reported at
// once, key files kept private, and inspect for other layouts. Real processes, real
// sockets, real files.

import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { collectText, exited, runCli, spawnTracked } from './support/child.js';

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
    expect(await runCli(['-V'])).toMatchObject({ code: 0, stdout: `${version}\n` });
  });
});

describe('a library argument the command line passed on is named by its flag', () => {
  it.each([
    [['serve', '--allow', 'nonsense', '--port', '0'], /^hailstone: --allow: "nonsense" is not a CIDR/],
    // Each worker parses its options: its bad usage comes back through the primary, still exit 2.
    [['serve', '--workers', '2', '--allow', '10.0.0.0/8,nonsense', '--port', '0', '--max-lead-ms', '100', '--log-level', 'silent'], /^hailstone: --allow: "nonsense" is not a CIDR/],
    [['get', '--server', 'bad::x'], /^hailstone: --server: "bad::x" is not host:port/],
    [['get', '--etcd', 'https://127.0.0.1:2379'], /^hailstone: --etcd: "https:\/\/127\.0\.0\.1:2379": use http:\/\/HOST:PORT/],
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
