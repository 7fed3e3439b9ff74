// Fleet mode against an etcd that serves only over TLS and wants a client certificate
// (--client-cert-auth): the certificates are made at test time with openssl. Servers and
// clients reach it with --etcd-ca/--etcd-cert/--etcd-key (or etcdctl's variables, or the
// library's PEM buffers), and every way the handshake can fail is one line with its cause.

import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
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

  it("honours etcdctl's ETCDCTL_CACERT, ETCDCTL_CERT and ETCDCTL_KEY when the --etcd-* flags are not given", async () => {
    const s = await startServe(['--etcd', etcd.endpoint, '--cluster', 'etcdctl-env', '--port', '0', '--max-lead-ms', '300', '--lease-ttl-s', '3'], {
      ETCDCTL_CACERT: ca.cert,
      ETCDCTL_CERT: client.cert,
      ETCDCTL_KEY: client.key,
    });
    s.child.kill('SIGTERM');
    expect(await s.done).toBe(0);
  });
});
