// Certificates rotate without a restart: a server's etcd CA, client certificate and key are
// rewritten in place (as cert-manager and Vault do), and etcd is restarted with a server
// certificate from a new CA that trusts only client certificates of that new CA. The server
// reads its files again and reaches the new etcd — with the old files it could not — and
// keeps its ids unique throughout.

import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from './support/child.js';
import { TestCa, opensslInstalled } from './support/certs.js';
import { TestEtcd, etcdInstalled, requireEtcd } from './support/etcd.js';
import { requirePrerequisite } from './support/prerequisite.js';
import { Load, duplicatesIn, startServe } from './support/serve-process.js';

requireEtcd();
requirePrerequisite(opensslInstalled, 'openssl, to make the certificates of the TLS tests');

describe.skipIf(!etcdInstalled || !opensslInstalled)('etcd certificates rotated under a running server', () => {
  let oldCa: TestCa;
  let newCa: TestCa;
  let etcd: TestEtcd;
  let dir: string;

  beforeAll(async () => {
    oldCa = TestCa.create('old-ca');
    newCa = TestCa.create('new-ca');
    dir = mkdtempSync(join(tmpdir(), 'hailstone-rotation-'));
    const server = oldCa.issue('etcd-server', { cn: 'etcd', san: ['IP:127.0.0.1'] });
    const client = oldCa.issue('client', { cn: 'hailstone' });
    // The files the server is given, as a Secret mounted in a pod would hold them.
    copyFileSync(oldCa.cert, join(dir, 'ca.pem'));
    copyFileSync(client.cert, join(dir, 'client.pem'));
    copyFileSync(client.key, join(dir, 'client.key'));
    etcd = await TestEtcd.start({ tls: { ...server, clientCa: oldCa.cert, probe: { ca: oldCa.cert, ...client } } });
  });

  afterAll(async () => {
    await etcd?.stop();
    oldCa?.remove();
    newCa?.remove();
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  });

  it('files rewritten in place, etcd restarted with a new CA: the server reads them again and serves on, 0 duplicates', async () => {
    const s = await startServe([
      '--etcd', etcd.endpoint, '--etcd-ca', join(dir, 'ca.pem'), '--etcd-cert', join(dir, 'client.pem'), '--etcd-key', join(dir, 'client.key'),
      '--cluster', 'rotation', '--port', '0', '--max-lead-ms', '300', '--lease-ttl-s', '3',
    ]);
    const load = new Load([`127.0.0.1:${s.port}`]);
    try {
      await load.more(500);
      // Rotation: the new CA's files written over the old ones.
      const server = newCa.issue('etcd-server-2', { cn: 'etcd', san: ['IP:127.0.0.1'] });
      const client = newCa.issue('client-2', { cn: 'hailstone' });
      copyFileSync(newCa.cert, join(dir, 'ca.pem'));
      copyFileSync(client.cert, join(dir, 'client.pem'));
      copyFileSync(client.key, join(dir, 'client.key'));
      await waitFor(() => /etcd TLS files changed and were read again/.test(s.stderr()), { what: 'the server to read its TLS files again', child: s.child });
      await load.more(200);
      // etcd restarted with the new CA's certificate, trusting only the new CA's clients.
      await etcd.kill();
      Object.assign(etcd.options.tls!, { ...server, clientCa: newCa.cert, probe: { ca: newCa.cert, ...client } });
      await etcd.run();
      const before = load.ids.length;
      await load.more(1000, 30_000);
      expect(load.ids.length).toBeGreaterThan(before);
      expect(s.stderr()).not.toMatch(/do not load/);
      expect(duplicatesIn(await load.stop())).toEqual([]);
    } finally {
      await load.stop();
      s.child.kill('SIGTERM');
      await s.done;
    }
  });
});
