// The deployment files under deploy/ are what real tools accept, and what docs/operations.md
// shows: Prometheus loads the alert rules (promtool), systemd accepts the units
// (systemd-analyze verify), and every metric the rules and the Grafana dashboard use is one a
// running server exports — a local server and a fleet server, asked at /metrics.

import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from './support/child.js';
import { TestEtcd, etcdInstalled, requireEtcd } from './support/etcd.js';
import { requirePrerequisite } from './support/prerequisite.js';
import { type ServeProcess, spawnServe } from './support/serve-process.js';

const ROOT = fileURLToPath(new URL('../', import.meta.url));
const RULES = join(ROOT, 'deploy/prometheus/hailstone.rules.yml');
const DASHBOARD = join(ROOT, 'deploy/grafana/hailstone.json');
const UNITS = readdirSync(join(ROOT, 'deploy/systemd')).map((f) => join(ROOT, 'deploy/systemd', f));
const operations = readFileSync(join(ROOT, 'docs/operations.md'), 'utf8');

const promtoolInstalled = spawnSync('promtool', ['--version']).status === 0;
const systemdAnalyze = spawnSync('systemd-analyze', ['--version']).status === 0;
requirePrerequisite(promtoolInstalled, 'promtool (Debian package prometheus), to check the alert rules');
requireEtcd();

/** Every metric name an expression uses (histogram series named by their metric). */
function metricsIn(text: string): string[] {
  return [...new Set((text.match(/\bhailstone_[a-z_]+/g) ?? []).map((m) => m.replace(/_(bucket|sum|count)$/, '')))].sort();
}

describe('deploy/: what docs/operations.md shows is the files themselves', () => {
  it.each([RULES, ...UNITS])('docs/operations.md includes %s as it is', (file) => {
    const path = file.slice(ROOT.length);
    const marker = `<!-- include ${path} -->`;
    const at = operations.indexOf(marker);
    expect(at, `docs/operations.md has no ${marker}`).toBeGreaterThanOrEqual(0);
    const block = /```\w*\n([\s\S]*?)```/.exec(operations.slice(at))![1];
    expect(block).toBe(readFileSync(file, 'utf8'));
  });
});

describe.skipIf(!promtoolInstalled)('the alert rules', () => {
  it('pass promtool check rules (and a broken copy does not)', () => {
    const ok = spawnSync('promtool', ['check', 'rules', RULES], { encoding: 'utf8' });
    expect(ok.status, ok.stdout + ok.stderr).toBe(0);
    expect(ok.stdout).toMatch(/SUCCESS: \d+ rules found/);
    const dir = mkdtempSync(join(tmpdir(), 'hailstone-rules-'));
    try {
      const broken = join(dir, 'broken.yml');
      writeFileSync(broken, readFileSync(RULES, 'utf8').replace('hailstone_healthy == 0', 'hailstone_healthy =='));
      expect(spawnSync('promtool', ['check', 'rules', broken]).status).not.toBe(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe.skipIf(!systemdAnalyze)('the systemd units', () => {
  it.each(UNITS)('%s passes systemd-analyze verify, with nothing to warn about', (unit) => {
    // verify checks that ExecStart's program exists: this machine's node stands in for /usr/bin/node.
    const dir = mkdtempSync(join(tmpdir(), 'hailstone-unit-'));
    try {
      const copy = join(dir, unit.split('/').at(-1)!);
      writeFileSync(copy, readFileSync(unit, 'utf8').replace('/usr/bin/node', process.execPath));
      const result = spawnSync('systemd-analyze', ['verify', copy], { encoding: 'utf8' });
      expect(result.stdout + result.stderr).toBe('');
      expect(result.status).toBe(0);
      // And it would say so: a restart policy systemd does not know.
      copyFileSync(copy, `${copy}.bak`);
      writeFileSync(copy, readFileSync(copy, 'utf8').replace('Restart=always', 'Restart=sometimes'));
      expect(spawnSync('systemd-analyze', ['verify', copy], { encoding: 'utf8' }).stderr).toMatch(/restart specifier/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe.skipIf(!etcdInstalled)('every metric the rules and the dashboard use, a running server exports', () => {
  let etcd: TestEtcd;
  const servers: Omit<ServeProcess, 'port'>[] = [];
  let exported = '';
  let stateDir = '';
  beforeAll(async () => {
    etcd = await TestEtcd.start();
    stateDir = mkdtempSync(join(tmpdir(), 'hailstone-deploy-'));
    // A local server and a fleet server: fleet mode's metrics exist only in fleet mode.
    servers.push(spawnServe(['--port', '0', '--state-dir', stateDir, '--metrics', '127.0.0.1:0']));
    servers.push(spawnServe(['--port', '0', '--etcd', etcd.endpoint, '--cluster', 'deploy', '--metrics', '127.0.0.1:0']));
    for (const s of servers) {
      const port = (await waitFor(() => /"metrics":"http:\/\/127\.0\.0\.1:(\d+)"/.exec(s.stderr()) ?? undefined, { what: 'the metrics port', child: s.child }))[1];
      await waitFor(() => /listening on udp/.test(s.stdout()) || undefined, { what: 'the server to serve', child: s.child });
      exported += await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    }
  });
  afterAll(async () => {
    for (const s of servers) s.child.kill('SIGKILL');
    await etcd?.stop();
    if (stateDir !== '') rmSync(stateDir, { recursive: true, force: true });
  });

  it.each([
    ['the alert rules', RULES],
    ['the Grafana dashboard', DASHBOARD],
  ])('%s', (_, file) => {
    const text = readFileSync(file, 'utf8');
    if (file.endsWith('.json')) JSON.parse(text);
    const used = metricsIn(text);
    expect(used.length).toBeGreaterThan(5);
    const missing = used.filter((name) => !new RegExp(`^# TYPE ${name} `, 'm').test(exported));
    expect(missing).toEqual([]);
  });
});
