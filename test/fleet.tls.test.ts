// Fleet mode against an etcd that serves only over TLS and wants a client certificate
// (--client-cert-auth): the certificates are made at test time with openssl. Servers and
// clients reach it with --etcd-ca/--etcd-cert/--etcd-key (or etcdctl's variables, or the
// library's PEM buffers), and every way the handshake can fail is one line with its cause.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createClient } from '../src/index.js';
import { runCli } from './support/child.js';
import { TestCa, opensslInstalled } from './support/certs.js';
import { TestEtcd, etcdInstalled, requireEtcd } from './support/etcd.js';
import { requirePrerequisite } from './support/prerequisite.js';
import { duplicatesIn, startServe } from './support/serve-process.js';

requireEtcd();
requirePrerequisite(opensslInstalled, 'openssl, to make the certificates of the TLS tests');

describe.skipIf(!etcdInstalled || !opensslInstalled)('fleet mode over TLS with client certificates', () => {
  let ca: TestCa;
  let etcd: TestEtcd;
  let client: { cert: string; key: string };
  let tlsArgs: string[];

  beforeAll(async () => {
    ca = TestCa.create();
    const server = ca.issue('etcd-server', { cn: 'etcd', san: ['IP:127.0.0.1'] });
    client = ca.issue('client', { cn: 'hailstone' });
    etcd = await TestEtcd.start({ tls: { ...server, clientCa: ca.cert, probe: { ca: ca.cert, ...client } } });
    tlsArgs = ['--etcd', etcd.endpoint, '--etcd-ca', ca.cert, '--etcd-cert', client.cert, '--etcd-key', client.key];
  });

  afterAll(async () => {
    await etcd?.stop();
    ca?.remove();
  });

  it('serve --etcd https:// claims a node id and serves; get --etcd https:// and createClient({ etcd }) find it', async () => {
    const s = await startServe([...tlsArgs, '--cluster', 'tls', '--port', '0', '--max-lead-ms', '300', '--lease-ttl-s', '3']);
    try {
      const got = await runCli(['get', '-n', '5', '--format', 'json', ...tlsArgs, '--cluster', 'tls']);
      expect(got.stderr).toBe('');
      expect(got.code).toBe(0);
      const fromCli = (JSON.parse(got.stdout) as string[]).map(BigInt);
      // The library: PEM as Buffers for the CA, file paths for the client certificate.
      const lib = createClient({ etcd: { endpoints: [etcd.endpoint], ca: ca.pem(), cert: client.cert, key: client.key }, cluster: 'tls' });
      try {
        const fromLib = await lib.nextIds(100);
        expect(duplicatesIn([...fromCli, ...fromLib])).toEqual([]);
        expect(fromCli).toHaveLength(5);
      } finally {
        await lib.close();
      }
    } finally {
      s.child.kill('SIGTERM');
      expect(await s.done).toBe(0);
    }
  });

  it('a server bound to 0.0.0.0 says its claim address is unusable, and clients pass it over with one warning; with --advertise they find it', async () => {
    const wildcard = await startServe([...tlsArgs, '--cluster', 'wild', '--host', '0.0.0.0', '--port', '0', '--max-lead-ms', '300', '--lease-ttl-s', '3']);
    expect(wildcard.stderr()).toMatch(/"msg":"the claim names udp 0\.0\.0\.0:\d+: 0\.0\.0\.0 is the wildcard address .* give --advertise HOST:PORT/);
    const passedOver = await runCli(['get', ...tlsArgs, '--cluster', 'wild', '--timeout-ms', '1000']);
    expect(passedOver.code).toBe(1);
    const warnings = passedOver.stderr.split('\n').filter((l) => l.startsWith('hailstone: warning: '));
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(/claim hailstone\/wild\/claims\/\d+ .* names udp 0\.0\.0\.0:\d+: .* passed over — start it with --advertise HOST:PORT/);
    expect(passedOver.stderr).toMatch(/UNAVAILABLE: .*no live servers/);
    wildcard.child.kill('SIGTERM');
    expect(await wildcard.done).toBe(0);
    const advertised = await startServe([...tlsArgs, '--cluster', 'wild', '--host', '0.0.0.0', '--advertise', '127.0.0.1', '--port', '0', '--max-lead-ms', '300', '--lease-ttl-s', '3']);
    expect(advertised.stderr()).not.toMatch(/unusable|wildcard/);
    const found = await runCli(['get', '-n', '2', ...tlsArgs, '--cluster', 'wild']);
    expect(found.stderr).toBe('');
    expect(found.stdout.trim().split('\n')).toHaveLength(2);
    advertised.child.kill('SIGTERM');
    expect(await advertised.done).toBe(0);
  });

  it("honours etcdctl's ETCDCTL_CACERT, ETCDCTL_CERT and ETCDCTL_KEY when the --etcd-* flags are not given — in every worker of --workers 2", async () => {
    const s = await startServe(['--etcd', etcd.endpoint, '--cluster', 'etcdctl-env', '--workers', '2', '--port', '0', '--max-lead-ms', '300', '--lease-ttl-s', '3'], {
      ETCDCTL_CACERT: ca.cert,
      ETCDCTL_CERT: client.cert,
      ETCDCTL_KEY: client.key,
    });
    const got = await runCli(['get', '-n', '50', ...tlsArgs, '--cluster', 'etcdctl-env']);
    expect(got.code).toBe(0);
    expect(new Set(got.stdout.trim().split('\n')).size).toBe(50);
    s.child.kill('SIGTERM');
    expect(await s.done).toBe(0);
  });
});
