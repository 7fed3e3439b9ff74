// Shared-key authentication of datagrams: an HMAC-SHA256 tag, truncated to 16 bytes, over
// everything before it. Requests and replies both carry one when a key is configured;
// a forged reply cannot then hand a client an id that was already issued to someone else.

import { createHmac, timingSafeEqual } from 'node:crypto';
import { InvalidArgumentError } from '../errors.js';
import { TAG_SIZE } from './wire.js';

export const MIN_KEY_BYTES = 16;

export class Authenticator {
  private readonly key: Buffer;

  constructor(key: Uint8Array) {
    if (!(key instanceof Uint8Array) || key.length < MIN_KEY_BYTES) {
      throw new InvalidArgumentError('key', `must be at least ${MIN_KEY_BYTES} bytes (generate one with \`hailstone keygen\`)`);
    }
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
export function parseKey(content: Uint8Array): Uint8Array {
  const text = Buffer.from(content).toString('utf8').trim();
  if (/^(?:[0-9a-fA-F]{2}){16,}$/.test(text)) return Buffer.from(text, 'hex');
  return Buffer.from(text, 'utf8');
}
