// What a server, `get` and `fleet status` say when etcd refuses them at startup: one line
// with a code that names the cause — unknown CA, a certificate for another name, an
// expired certificate, no client certificate, a wrong password, no permission on the
// prefix, https:// without a CA the system trusts — and exit 1 at once: never a gRPC stack
// trace, never a wait for the whole --etcd-wait-ms.

import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Etcd3, Range } from 'etcd3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from './support/child.js';
import { TestCa, opensslInstalled } from './support/certs.js';
import { TestEtcd, etcdInstalled, requireEtcd } from './support/etcd.js';
import { requirePrerequisite } from './support/prerequisite.js';

requireEtcd();
requirePrerequisite(opensslInstalled, 'openssl, to make the certificates of the TLS tests');

/**
 * Far longer than a refusal may take: a refusal must be said within half of it (a loaded
 * 2-core machine may take seconds just to start the process), and one that waited for it
 * fails the test.
 */
const WAIT_MS = 40_000;

describe.skipIf(!etcdInstalled || !opensslInstalled)('etcd refusing a server at startup: one line naming the cause, exit 1, at once', () => {
  let ca: TestCa;
  let other: TestCa;
  let etcd: TestEtcd;
  let expired: TestEtcd;
  let client: { cert: string; key: string };
  let dir: string;

  beforeAll(async () => {
    ca = TestCa.create();
    other = TestCa.create('another-ca');
    dir = mkdtempSync(join(tmpdir(), 'hailstone-refusals-'));
    const server = ca.issue('etcd-server', { cn: 'etcd', san: ['IP:127.0.0.1'] });
    const stale = ca.issue('etcd-expired', { cn: 'etcd', san: ['IP:127.0.0.1'], days: -1 });
    client = ca.issue('client', { cn: 'hailstone-client' });
    const probe = { ca: ca.cert, ...client };
    [etcd, expired] = await Promise.all([
      TestEtcd.start({ tls: { ...server, clientCa: ca.cert, probe } }),
      // An expired certificate fails every check: its health is asked without verifying it.
      TestEtcd.start({ tls: { ...stale, probe: {} } }),
    ]);
    const setup = new Etcd3({ hosts: `127.0.0.1:${etcd.clientPort}`, credentials: { rootCertificate: ca.pem(), certChain: readFileSync(client.cert), privateKey: readFileSync(client.key) } });
    try {
      await setup.user('root').create('root-pw');
      await setup.role('root').create();
      await setup.user('root').addRole('root');
      await setup.role('elsewhere').create();
      await setup.role('elsewhere').grant({ permission: 'Readwrite', range: Range.prefix('hailstone/elsewhere/') });
      await setup.user('hs').create('hs-pw');
      await setup.user('hs').addRole('elsewhere');
      await setup.auth.authEnable();
    } finally {
      setup.close();
    }
    writeFileSync(join(dir, 'pw'), 'hs-pw\n', { mode: 0o600 });
    writeFileSync(join(dir, 'wrong'), 'not-the-password\n', { mode: 0o600 });
  });

  afterAll(async () => {
    await etcd?.stop();
    await expired?.stop();
    ca?.remove();
    other?.remove();
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  });

  function tls(endpoint = etcd.endpoint, caFile = ca.cert): string[] {
    return ['--etcd', endpoint, '--etcd-ca', caFile, '--etcd-cert', client.cert, '--etcd-key', client.key];
  }

  const cases: [string, () => string[], RegExp][] = [
    ['an unknown CA', () => tls(etcd.endpoint, other.cert), /COORDINATOR_REFUSED: .*etcd's certificate .*not signed by the CA given/],
    ['a certificate for another name', () => tls(`https://localhost:${etcd.clientPort}`), /COORDINATOR_REFUSED: .*does not name localhost/],
    ['an expired certificate', () => tls(expired.endpoint), /COORDINATOR_REFUSED: .*expired/],
    ['no client certificate', () => ['--etcd', etcd.endpoint, '--etcd-ca', ca.cert], /COORDINATOR_REFUSED: .*client certificate/],
    ['https:// without a CA', () => ['--etcd', etcd.endpoint, '--etcd-cert', client.cert, '--etcd-key', client.key], /COORDINATOR_REFUSED: .*--etcd-ca/],
    ['a wrong password', () => [...tls(), '--etcd-user', 'hs', '--etcd-password-file', join(dir, 'wrong')], /COORDINATOR_REFUSED: .*user name or password/],
    ['no permission on the prefix', () => [...tls(), '--etcd-user', 'hs', '--etcd-password-file', join(dir, 'pw')], /COORDINATOR_REFUSED: .*permission denied.*hailstone\/default\//],
  ];

  it.each(cases)('serve: %s', { timeout: 60_000 }, async (_what, args, message) => {
    const started = Date.now();
    const r = await runCli(['serve', ...args(), '--port', '0', '--etcd-wait-ms', String(WAIT_MS), '--lease-ttl-s', '3', '--log-level', 'silent']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(message);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).not.toMatch(/\n\s+at /);
    expect(Date.now() - started).toBeLessThan(WAIT_MS / 2);
  });

  // A client reads etcd the same way: one case of each kind.
  it.each(cases.filter(([what]) => /unknown CA|password|permission/.test(what)))('get --etcd: %s', async (_what, args, message) => {
    const r = await runCli(['get', ...args(), '--timeout-ms', String(WAIT_MS)]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(message);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
  });
});
