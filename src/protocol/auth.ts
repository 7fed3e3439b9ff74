// Shared-key authentication of datagrams: an HMAC-SHA256 tag, truncated to 16 bytes, over
// everything before it. Requests and replies both carry one when a key is configured;
// a forged reply cannot then hand a client an id that was already issued to someone else.

import { createHmac, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { InvalidArgumentError } from '../errors.js';
import { TAG_SIZE } from './wire.js';

export const MIN_KEY_BYTES = 16;

export class Authenticator {
  private readonly key: Buffer;

  constructor(key: Uint8Array) {
    if (!(key instanceof Uint8Array) || key.length < MIN_KEY_BYTES) {
      throw new InvalidArgumentError('key', `must be at least ${MIN_KEY_BYTES} bytes (generate one with \`hailstone keygen\`)`);
    }
    // The bytes of a key file read as is: used as the key they would sign with other bytes
    // than the server's, and every reply would be dropped until the deadline. Say so now.
    if (isKeyText(key)) throw new InvalidArgumentError('key', 'looks like the hex text of a key file: pass readKeyFile(path) or parseKey(text)');
    this.key = Buffer.from(key);
  }

  private tagOf(data: Uint8Array): Buffer {
    return createHmac('sha256', this.key).update(data).digest().subarray(0, TAG_SIZE);
  }

  /** Writes the tag into the last 16 bytes of buf[0..length). */
  sign(buf: Uint8Array, length: number): void {
    buf.set(this.tagOf(buf.subarray(0, length - TAG_SIZE)), length - TAG_SIZE);
  }

  /** Whether the last 16 bytes of msg are the tag of the rest; compared in constant time. */
  verify(msg: Uint8Array): boolean {
    if (msg.length < TAG_SIZE) return false;
    const end = msg.length - TAG_SIZE;
    return timingSafeEqual(this.tagOf(msg.subarray(0, end)), msg.subarray(end));
  }
}

/**
 * Parses a key file's content: 32+ hex digits, or else the raw bytes (surrounding
 * whitespace trimmed). `hailstone keygen` writes 64 hex digits.
 */
export function parseKey(content: Uint8Array | string): Uint8Array {
  const text = (typeof content === 'string' ? content : Buffer.from(content).toString('utf8')).trim();
  if (/^(?:[0-9a-fA-F]{2}){16,}$/.test(text)) return Buffer.from(text, 'hex');
  return Buffer.from(text, 'utf8');
}

/**
 * The key in a key file (see parseKey). Throws InvalidArgumentError (argument "keyFile")
 * when the file cannot be read or holds fewer than MIN_KEY_BYTES bytes of key.
 */
export function readKeyFile(path: string): Uint8Array {
  if (typeof path !== 'string' || path === '') throw new InvalidArgumentError('keyFile', 'must be the path of a key file (make one with `hailstone keygen`)');
  let content: Buffer;
  try {
    content = readFileSync(path);
  } catch (error) {
    throw new InvalidArgumentError('keyFile', `cannot read the key file ${path}: ${(error as Error).message}`);
  }
  const key = parseKey(content);
  if (key.length < MIN_KEY_BYTES) {
    throw new InvalidArgumentError('keyFile', `the key in ${path} is ${key.length} bytes; at least ${MIN_KEY_BYTES} are needed (make one with \`hailstone keygen\`)`);
  }
  return key;
}

/** What `hailstone keygen` writes, as bytes: 64 hex digits, perhaps within whitespace (a line end). */
function isKeyText(key: Uint8Array): boolean {
  const space = (b: number) => b === 0x20 || (b >= 0x09 && b <= 0x0d);
  const hex = (b: number) => (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x46) || (b >= 0x61 && b <= 0x66);
  let start = 0;
  let end = key.length;
  while (start < end && space(key[start]!)) start++;
  while (end > start && space(key[end - 1]!)) end--;
  if (end - start !== 64) return false;
  for (let i = start; i < end; i++) if (!hex(key[i]!)) return false;
  return true;
}
