// The TLS files followed for etcd: read again when they change, and a set that does not
// load (a certificate written before its key) kept out — the previous set stays in use —
// until a later change makes it whole.

import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RotatingTlsFiles } from '../src/fleet/etcd-credentials.js';
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
});
