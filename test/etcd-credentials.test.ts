// The TLS files followed for etcd: read again when they change, and a set that does not
// load (a certificate written before its key) kept out — the previous set stays in use —
// until a later change makes it whole.

import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RotatingTlsFiles } from '../src/fleet/etcd-credentials.js';
import { readTlsMaterial } from '../src/fleet/etcd-tls.js';
import { TestCa, opensslInstalled } from './support/certs.js';
import { requirePrerequisite } from './support/prerequisite.js';

requirePrerequisite(opensslInstalled, 'openssl, to make the certificates of the TLS tests');

describe.skipIf(!opensslInstalled)('TLS files followed', () => {
  let ca: TestCa;
  let dir: string;
  let first: { cert: string; key: string };
  let second: { cert: string; key: string };

  beforeAll(() => {
    ca = TestCa.create();
    dir = mkdtempSync(join(tmpdir(), 'hailstone-tls-files-'));
    first = ca.issue('first', { cn: 'hailstone' });
    second = ca.issue('second', { cn: 'hailstone' });
  });

  afterAll(() => {
    ca?.remove();
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  });

  it('takes a changed pair, keeps the old one while the pair does not match, and says each once', () => {
    const cert = join(dir, 'client.pem');
    const key = join(dir, 'client.key');
    copyFileSync(first.cert, cert);
    copyFileSync(first.key, key);
    const events: { ok: boolean; message: string }[] = [];
    const files = new RotatingTlsFiles({ ca: ca.cert, cert, key }, (e) => events.push(e));
    try {
      const original = files.current.cert;
      expect(files.check()).toBe(false); // unchanged
      // Half way through a rotation: the new certificate, the old key.
      copyFileSync(second.cert, cert);
      expect(files.check()).toBe(false);
      expect(files.check()).toBe(false);
      expect(files.current.cert).toEqual(original);
      expect(events).toEqual([{ ok: false, message: expect.stringMatching(/etcd TLS files changed but do not load .*keep the previous ones/) }]);
      // The key follows: the new pair is taken.
      copyFileSync(second.key, key);
      expect(files.check()).toBe(true);
      expect(files.current.cert).not.toEqual(original);
      expect(events[1]).toEqual({ ok: true, message: expect.stringMatching(/read again .*client\.pem/) });
    } finally {
      files.close();
    }
  });

  it('keeps reading the files after every connection let go of them (all refused, the server fenced): a fix written then is taken', async () => {
    const cert = join(dir, 'after-fence.pem');
    const key = join(dir, 'after-fence.key');
    copyFileSync(first.cert, cert);
    copyFileSync(first.key, key);
    const events: { ok: boolean; message: string }[] = [];
    const files = new RotatingTlsFiles({ ca: ca.cert, cert, key }, (e) => events.push(e));
    try {
      files.follow();
      // gRPC listens while it connects, and lets go when every connection has failed.
      const listener = () => undefined;
      files.addIdentityCertificateListener(listener);
      files.removeIdentityCertificateListener(listener);
      const original = files.current.cert;
      copyFileSync(second.cert, cert);
      copyFileSync(second.key, key);
      const until = Date.now() + 10_000;
      while (events.length === 0 && Date.now() < until) await new Promise((resolve) => setTimeout(resolve, 50));
      expect(events).toEqual([{ ok: true, message: expect.stringMatching(/read again .*after-fence\.pem/) }]);
      expect(files.current.cert).not.toEqual(original);
    } finally {
      files.close();
    }
  });

  it('a PEM file of the wrong kind, or a key that is not the certificate\'s, is named by its option before any connection (not as an OpenSSL code at a handshake)', () => {
    const cases: [Parameters<typeof readTlsMaterial>[0], string, RegExp][] = [
      [{ ca: ca.cert, cert: first.key, key: first.key }, 'etcd.cert', /holds no certificate .*is it the right file/],
      [{ ca: first.key }, 'etcd.ca', /holds no certificate/],
      [{ ca: ca.cert, cert: first.cert, key: first.cert }, 'etcd.key', /holds no private key/],
      [{ ca: ca.cert, cert: first.cert, key: second.key }, 'etcd.key', /the key does not belong to the certificate/],
    ];
    for (const [options, argument, message] of cases) {
      expect(() => readTlsMaterial(options), argument).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT', argument, message: expect.stringMatching(message) }));
    }
    expect(readTlsMaterial({ ca: ca.cert, cert: first.cert, key: first.key }).cert).toBeDefined();
  });
});
