// The install step of the native addons (native/build.mjs) run on a copy of native/: a
// compile error is reduced to the compiler's own line, with the whole output kept; the
// skip switch is recorded. What it records is what the server says at run time.

import { execFile } from 'node:child_process';
import { appendFileSync, cpSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';

const run = promisify(execFile);
const ROOT = fileURLToPath(new URL('../', import.meta.url));
const work = mkdtempSync(join(tmpdir(), 'hailstone-native-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

function copyOfNative(name: string): string {
  const dir = join(work, name, 'native');
  const built = join(ROOT, 'native', 'build');
  cpSync(join(ROOT, 'native'), dir, { recursive: true, filter: (src) => src !== built && !src.startsWith(`${built}/`) });
  return dir;
}

async function build(dir: string, env: Record<string, string> = {}): Promise<{ lines: string[]; status: { built: boolean; reason?: string } }> {
  const { stderr } = await run(process.execPath, [join(dir, 'build.mjs')], { env: { ...process.env, ...env }, maxBuffer: 16 * 1024 * 1024 });
  return { lines: stderr.split('\n').filter((l) => l !== ''), status: JSON.parse(readFileSync(join(dir, 'build', 'status.json'), 'utf8')) };
}

describe.runIf(process.platform === 'linux')('native/build.mjs', () => {
  it("a compile error: one line quoting the compiler's error, the whole output in build.log, no addon left behind", { timeout: 120_000 }, async () => {
    const dir = copyOfNative('broken');
    appendFileSync(join(dir, 'lock.c'), '\nthis is not C;\n');
    const { lines, status } = await build(dir);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^hailstone: native addons not built: the build failed: .*lock\.c:\d+:\d+: error: .* \(whole output: .*build\.log\); the server will use dgram and the portable lock file$/);
    expect(status).toMatchObject({ built: false, reason: expect.stringMatching(/^the build failed: .*lock\.c/) });
    expect(readFileSync(join(dir, 'build', 'build.log'), 'utf8')).toMatch(/gyp ERR!/);
    expect(existsSync(join(dir, 'build', 'Release'))).toBe(false);
  });

  it('HAILSTONE_SKIP_NATIVE=1 and a missing compiler are recorded as such', async () => {
    const skipped = await build(copyOfNative('skipped'), { HAILSTONE_SKIP_NATIVE: '1' });
    expect(skipped.status).toMatchObject({ built: false, reason: 'skipped at install (HAILSTONE_SKIP_NATIVE=1)' });
    const noCc = await build(copyOfNative('no-cc'), { CC: '/nonexistent/cc' });
    expect(noCc.lines).toEqual([expect.stringContaining('no C compiler (/nonexistent/cc) on the PATH')]);
  });
});
