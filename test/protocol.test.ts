import { describe, expect, it } from 'vitest';
import { Authenticator, parseKey } from '../src/protocol/auth.js';
import { ReplayGuard } from '../src/protocol/replay-guard.js';
import {
  HEADER_SIZE,
  MAX_DATAGRAM,
  MAX_IDS_PER_REQUEST,
  PARSE_BAD_REQUEST,
  PARSE_DROP,
  STATUS_OK,
  STATUS_UNAVAILABLE,
  TAG_SIZE,
  parseReply,
  parseRequest,
  requestSize,
  writeReplyHeader,
  writeRequestHeader,
  type RequestHeader,
} from '../src/protocol/wire.js';

const header = (): RequestHeader => ({ tagged: false, count: 0, nonceHigh: 0, nonceLow: 0, clientTimeMs: 0 });
const nonce = Uint8Array.from([1, 2, 3, 4, 5, 6, 7, 8]);

function request(count: number, tagged = false, size = requestSize(count, tagged)): Uint8Array {
  const buf = new Uint8Array(size);
  writeRequestHeader(buf, count, nonce, 1_795_000_000_123, tagged);
  return buf;
}

describe('wire protocol v1', () => {
  it('the largest reply, tagged, fits 1232 bytes; a request is exactly as large as its full reply', () => {
    expect(MAX_IDS_PER_REQUEST).toBe(149);
    expect(requestSize(MAX_IDS_PER_REQUEST, true)).toBeLessThanOrEqual(MAX_DATAGRAM);
    expect(requestSize(MAX_IDS_PER_REQUEST + 1, true)).toBeGreaterThan(MAX_DATAGRAM);
    expect(requestSize(1, false)).toBe(32);
    expect(requestSize(128, true)).toBe(24 + 1024 + 16);
  });

  it('parses a request header: count, nonce, client time, tag flag', () => {
    const h = header();
    expect(parseRequest(request(7), h)).toBe(0);
    expect(h).toEqual({ tagged: false, count: 7, nonceHigh: 0x01020304, nonceLow: 0x05060708, clientTimeMs: 1_795_000_000_123 });
    expect(parseRequest(request(7, true), h)).toBe(0);
    expect(h.tagged).toBe(true);
  });

  it('drops what is not a v1 request and answers BAD_REQUEST for invalid fields of a good header', () => {
    const h = header();
    const good = request(2);
    expect(parseRequest(good.subarray(0, HEADER_SIZE - 1), h)).toBe(PARSE_DROP);
    for (const [offset, value] of [[0, 0x49], [1, 0], [2, 2], [3, 2]] as const) {
      const bad = Uint8Array.from(good);
      bad[offset] = value;
      expect(parseRequest(bad, h), `byte ${offset}`).toBe(PARSE_DROP);
    }
    const bad = (mutate: (b: Uint8Array) => void, size = good.length) => {
      const b = new Uint8Array(size);
      b.set(good.subarray(0, Math.min(size, good.length)));
      mutate(b);
      return parseRequest(b, h);
    };
    expect(bad((b) => (b[4] = 0x80))).toBe(PARSE_BAD_REQUEST); // unknown flag
    expect(bad((b) => (b[5] = 1))).toBe(PARSE_BAD_REQUEST); // reserved byte
    expect(bad((b) => ((b[6] = 0), (b[7] = 0)))).toBe(PARSE_BAD_REQUEST); // count 0
    expect(bad((b) => ((b[6] = 0), (b[7] = 150)), 2000)).toBe(PARSE_BAD_REQUEST); // count > 149
    expect(bad(() => undefined, good.length - 1)).toBe(PARSE_BAD_REQUEST); // not padded to the reply size
  });

  it('round-trips a reply header and rejects malformed replies', () => {
    const req = request(3);
    const out = new Uint8Array(requestSize(3, false));
    writeReplyHeader(out, req, STATUS_OK, 3, 0, false);
    expect(parseReply(out)).toEqual({ tagged: false, status: STATUS_OK, count: 3, retryAfterMs: 0 });
    expect(Array.from(out.subarray(8, 16))).toEqual(Array.from(nonce));
    const unavailable = new Uint8Array(HEADER_SIZE);
    writeReplyHeader(unavailable, req, STATUS_UNAVAILABLE, 0, 1234.2, false);
    expect(parseReply(unavailable)).toMatchObject({ status: STATUS_UNAVAILABLE, retryAfterMs: 1235 });
    expect(parseReply(out.subarray(0, out.length - 1))).toBeUndefined(); // length does not match the count
    expect(parseReply(req)).toBeUndefined(); // a request is not a reply
    const ids = Uint8Array.from(out);
    ids[5] = STATUS_UNAVAILABLE; // refusals carry no ids
    expect(parseReply(ids)).toBeUndefined();
  });
});

describe('authentication', () => {
  const key = parseKey(new TextEncoder().encode('00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n'));

  it('reads hex key files (and raw text keys), and refuses short keys', () => {
    expect(key.length).toBe(32);
    expect(parseKey(new TextEncoder().encode('  a raw passphrase key  ')).length).toBe(20);
    expect(() => new Authenticator(new Uint8Array(15))).toThrow(/at least 16 bytes/);
  });

  it('verifies its own tags and rejects every flipped bit, a truncated tag and another key', () => {
    const auth = new Authenticator(key);
    const msg = request(1, true);
    auth.sign(msg, msg.length);
    expect(auth.verify(msg)).toBe(true);
    for (let bit = 0; bit < msg.length * 8; bit++) {
      const bad = Uint8Array.from(msg);
      bad[bit >> 3]! ^= 1 << (bit & 7);
      expect(auth.verify(bad), `bit ${bit}`).toBe(false);
    }
    expect(auth.verify(msg.subarray(0, msg.length - 1))).toBe(false);
    expect(auth.verify(msg.subarray(0, TAG_SIZE - 1))).toBe(false);
    const other = new Authenticator(Uint8Array.from(key, (b) => b ^ 1));
    expect(other.verify(msg)).toBe(false);
  });

  it('the replay guard drops stale and repeated requests and forgets after two windows', () => {
    const g = new ReplayGuard(1000, 1_000_000, 0);
    expect(g.check(1, 2, 5000, 5000)).toBe('ok');
    expect(g.check(1, 2, 5000, 5001)).toBe('replayed');
    expect(g.check(1, 3, 3999, 5000)).toBe('stale');
    expect(g.check(1, 3, 6001, 5000)).toBe('stale');
    expect(g.check(1, 2, 5900, 5900)).toBe('replayed'); // previous generation still remembered
    expect(g.check(1, 2, 8000, 8000)).toBe('ok'); // the old request is stale by now anyway
  });
});
