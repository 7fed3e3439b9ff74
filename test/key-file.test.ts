// Key files in the library: readKeyFile reads what `hailstone keygen` writes, and a key
// file's bytes passed as the key itself — hex text, not the key — are refused at once by
// the client and the server instead of every request timing out. Real files, real sockets.

import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { InvalidArgumentError, createClient, serve } from '../src/index.js';
import { parseKey, readKeyFile } from '../src/protocol/auth.js';
import { silent } from './support/logger.js';
import { startServer } from './support/udp.js';

const root = mkdtempSync(join(tmpdir(), 'hailstone-key-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

/** A key file as `hailstone keygen` writes it: 64 hex digits and a line end. */
function keyFile(name: string): { path: string; key: Buffer } {
  const key = randomBytes(32);
  const path = join(root, name);
  writeFileSync(path, `${key.toString('hex')}\n`, { mode: 0o600 });
  return { path, key };
}

function thrown(f: () => unknown): unknown {
  try {
    f();
  } catch (error) {
    return error;
  }
  throw new Error('it did not throw');
}

describe('readKeyFile', () => {
  it('reads the key keygen wrote, and a client and a server given it talk', async () => {
    const { path, key } = keyFile('ok.key');
    expect(Buffer.from(readKeyFile(path)).equals(key)).toBe(true);
    const s = await startServer({ key: readKeyFile(path) });
    const client = createClient({ servers: [s.endpoint], key: readKeyFile(path), deadlineMs: 5000 });
    try {
      expect(typeof (await client.nextId())).toBe('bigint');
    } finally {
      await client.close();
      await s.stop();
    }
  });

  it('a missing file or a short key: InvalidArgumentError naming keyFile and the file', () => {
    const missing = thrown(() => readKeyFile(join(root, 'missing.key')));
    expect(missing).toBeInstanceOf(InvalidArgumentError);
    expect(missing).toMatchObject({ argument: 'keyFile', message: expect.stringMatching(/cannot read the key file .*missing\.key: ENOENT/) });
    const short = join(root, 'short.key');
    writeFileSync(short, 'too short\n');
    expect(thrown(() => readKeyFile(short))).toMatchObject({ argument: 'keyFile', message: expect.stringMatching(/is 9 bytes; at least 16 are needed/) });
  });
});

describe("a key file's text passed as the key", () => {
  const hint = /^key: looks like the hex text of a key file: pass readKeyFile\(path\) or parseKey\(text\)$/;

  it('createClient refuses it at once (it used to time out)', () => {
    const { path } = keyFile('client.key');
    for (const text of [readFileSync(path), readFileSync(path).subarray(0, 64), Buffer.from(readFileSync(path, 'utf8').toUpperCase())]) {
      const error = thrown(() => createClient({ servers: ['127.0.0.1:7077'], key: text }));
      expect(error).toBeInstanceOf(InvalidArgumentError);
      expect((error as InvalidArgumentError).message).toMatch(hint);
    }
  });

  it('serve refuses it before binding, as key or among keys', async () => {
    const { path } = keyFile('server.key');
    const stateDir = mkdtempSync(join(root, 'state-'));
    for (const options of [{ key: readFileSync(path) }, { keys: [readKeyFile(path), readFileSync(path)] }]) {
      const error = await serve({ nodeId: 1, stateDir, port: 0, logger: silent, ...options }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(InvalidArgumentError);
      expect((error as InvalidArgumentError).message).toMatch(hint);
    }
  });

  it('what parseKey makes of the text is accepted, and so are raw keys that are not hex text', () => {
    const { path } = keyFile('parsed.key');
    expect(() => createClient({ servers: ['127.0.0.1:7077'], key: parseKey(readFileSync(path, 'utf8')) })).not.toThrow();
    // 64 random bytes, and 64 characters of a passphrase: keys, not a key file's text.
    expect(() => createClient({ servers: ['127.0.0.1:7077'], key: randomBytes(64) })).not.toThrow();
    expect(() => createClient({ servers: ['127.0.0.1:7077'], key: Buffer.from('x'.repeat(64)) })).not.toThrow();
    // 62 hex digits are not what keygen writes: taken as given.
    expect(() => createClient({ servers: ['127.0.0.1:7077'], key: Buffer.from('a'.repeat(62)) })).not.toThrow();
  });
});
