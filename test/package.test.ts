// The npm package as a user installs it: `npm pack`, the tarball installed into a new app,
// its addons built by the install step and loaded, a strict NodeNext TypeScript program
// checked against the installed types and run, the bin, require() from CommonJS, and what
// each entry point loads.

import { execFile } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const run = promisify(execFile);
const ROOT = fileURLToPath(new URL('../', import.meta.url));
const version = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;
const work = mkdtempSync(join(tmpdir(), 'hailstone-pkg-'));
const app = join(work, 'app');
const installed = join(app, 'node_modules', 'hailstone');
let tarball = '';
let packed: string[] = [];
let installLog = '';
afterAll(() => rmSync(work, { recursive: true, force: true }));

beforeAll(async () => {
  // --ignore-scripts: the tree is already built (npm install did it); prepare would build it again.
  const pack = await run('npm', ['pack', '--json', '--ignore-scripts', '--pack-destination', work], { cwd: ROOT, maxBuffer: 16 * 1024 * 1024 });
  const [info] = JSON.parse(pack.stdout) as { filename: string; files: { path: string }[] }[];
  tarball = join(work, info!.filename);
  packed = info!.files.map((f) => f.path);
  cpSync(join(ROOT, 'test', 'fixtures', 'package-app'), app, { recursive: true });
  writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'app', private: true, type: 'module' }));
  const install = await run('npm', ['install', tarball, '--no-audit', '--no-fund', '--prefer-offline', '--foreground-scripts'], {
    cwd: app,
    maxBuffer: 64 * 1024 * 1024,
    env: { ...process.env, npm_config_loglevel: 'notice' },
  });
  installLog = `${install.stdout}${install.stderr}`;
}, 240_000);

describe('the npm package', () => {
  it('ships what it runs: every source the addons build from, the LICENSE, and no source map pointing at sources it does not ship', () => {
    const gyp = readFileSync(join(ROOT, 'native', 'binding.gyp'), 'utf8');
    for (const source of gyp.match(/[\w-]+\.c\b/g) ?? []) expect(packed).toContain(`native/${source}`);
    expect(packed).toEqual(expect.arrayContaining(['LICENSE', 'README.md', 'build/hailstone.wasm', 'dist/index.js', 'dist/index.d.ts', 'dist/cli/main.js', 'native/build.mjs', 'deploy/prometheus/hailstone.rules.yml', 'deploy/systemd/hailstone.service', 'deploy/grafana/hailstone.json']));
    expect(packed.filter((p) => p.endsWith('.map'))).toEqual([]);
    expect(packed.filter((p) => p.startsWith('native/build/'))).toEqual([]);
  });

  it.runIf(process.platform === 'linux' && process.env.HAILSTONE_SKIP_NATIVE !== '1')('the install builds both addons, says so in one line, and the installed package loads them', async () => {
    expect(installLog).toMatch(/hailstone: native addons built \(hailstone_udp, hailstone_lock\)/);
    expect(JSON.parse(readFileSync(join(installed, 'native', 'build', 'status.json'), 'utf8'))).toMatchObject({ built: true, addons: ['hailstone_udp', 'hailstone_lock'] });
    const check = `
      import { createRequire } from 'node:module';
      import { nativeAvailability } from 'hailstone';
      const lock = createRequire(import.meta.url)('./node_modules/hailstone/native/build/Release/hailstone_lock.node');
      console.log(JSON.stringify({ udp: nativeAvailability().available, lock: typeof lock.tryLockExclusive }));`;
    const { stdout } = await run(process.execPath, ['--input-type=module', '-e', check], { cwd: app });
    expect(JSON.parse(stdout)).toEqual({ udp: true, lock: 'function' });
  });

  it('a strict NodeNext TypeScript program type-checks against the installed types and runs', async () => {
    const tsconfig = {
      compilerOptions: {
        target: 'ES2022',
        module: 'NodeNext',
        moduleResolution: 'NodeNext',
        strict: true,
        exactOptionalPropertyTypes: true,
        noUncheckedIndexedAccess: true,
        verbatimModuleSyntax: true,
        skipLibCheck: false,
        types: ['node'],
        typeRoots: [join(ROOT, 'node_modules', '@types')],
        outDir: 'out',
      },
      files: ['app.ts'],
    };
    writeFileSync(join(app, 'tsconfig.json'), JSON.stringify(tsconfig));
    const tsc = join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
    const compiled = await run(process.execPath, [tsc, '-p', 'tsconfig.json'], { cwd: app }).catch((e: { stdout: string }) => ({ stdout: e.stdout, failed: true }));
    expect(compiled.stdout).toBe('');
    const { stdout } = await run(process.execPath, [join(app, 'out', 'app.js')], { cwd: app });
    const result = JSON.parse(stdout) as { ids: string[]; transport: string };
    expect(result.ids).toHaveLength(3);
    expect(new Set(result.ids).size).toBe(3);
  });

  it('the bin: hailstone --version prints the package version', async () => {
    const { stdout } = await run(join(app, 'node_modules', '.bin', 'hailstone'), ['--version'], { cwd: app });
    expect(stdout.trim()).toBe(version);
  });

  it('CommonJS programs require() it (Node ≥ 20.19 loads ES modules from require)', async () => {
    const { stdout } = await run(process.execPath, ['-e', "const h = require('hailstone'); const g = require('hailstone/generator'); console.log(typeof h.createClient, typeof g.createGenerator(({ nodeId: 1 })).nextId())"], { cwd: app });
    expect(stdout.trim()).toBe('function bigint');
  });

  it.runIf(process.platform === 'linux')('an addon build that cannot happen says why in one line, and the server gives the same reason', async () => {
    const rebuilt = await run('npm', ['rebuild', 'hailstone', '--foreground-scripts'], { cwd: app, env: { ...process.env, CC: '/nonexistent/cc' } });
    const lines = `${rebuilt.stdout}${rebuilt.stderr}`.split('\n').filter((l) => l.startsWith('hailstone: '));
    expect(lines).toEqual([expect.stringMatching(/^hailstone: native addons not built: no C compiler \(\/nonexistent\/cc\) on the PATH: install one .*npm rebuild hailstone/)]);
    const served = await run(join(app, 'node_modules', '.bin', 'hailstone'), ['serve', '--transport', 'native', '--port', '0', '--state-dir', join(work, 'no-addon')], { cwd: app }).catch(
      (e: { code: number; stderr: string }) => e,
    );
    expect(served).toMatchObject({ code: 1, stderr: expect.stringContaining('hailstone: NATIVE_UNAVAILABLE: the native UDP transport is unavailable: the addons were not built at install: no C compiler (/nonexistent/cc)') });
    // Built again for whatever runs after.
    await run('npm', ['rebuild', 'hailstone'], { cwd: app });
    expect(existsSync(join(installed, 'native', 'build', 'Release', 'hailstone_udp.node'))).toBe(true);
  });

  /** The modules a one-line program importing `specifier` loads. */
  async function loadsOf(specifier: string): Promise<string[]> {
    const log = join(work, `loads-${specifier.replace(/\W/g, '_')}.txt`);
    await run(process.execPath, ['--import', join(ROOT, 'test', 'fixtures', 'record-loads.mjs'), '--input-type=module', '-e', `await import('${specifier}')`], {
      cwd: app,
      env: { ...process.env, HAILSTONE_LOAD_LOG: log },
    });
    return readFileSync(log, 'utf8').split('\n').filter((l) => l !== '');
  }

  it("'hailstone/generator' loads the generator alone: no etcd, gRPC, sockets' server or state files; 'hailstone' loads no etcd, gRPC or pino", async () => {
    const generator = await loadsOf('hailstone/generator');
    const fromPackage = generator.filter((m) => m.includes('node_modules/hailstone/')).map((m) => m.replace(/^.*node_modules\/hailstone\//, ''));
    expect(fromPackage.length).toBeGreaterThan(3);
    expect(fromPackage.filter((m) => /server|client|node\/|fleet|cli/.test(m))).toEqual([]);
    expect(generator.filter((m) => !m.includes('node_modules/hailstone/') && m.includes('node_modules'))).toEqual([]);
    const whole = await loadsOf('hailstone');
    expect(whole.filter((m) => /etcd3|grpc|protobuf|cockatiel/.test(m))).toEqual([]);
    // pino comes with the first warning the default logger writes, not with the import.
    expect(whole.filter((m) => /node_modules\/(pino|thread-stream|sonic-boom)/.test(m))).toEqual([]);
    expect(whole.some((m) => m.endsWith('dist/server/server.js'))).toBe(true);
  });
});

