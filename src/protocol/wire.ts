// Wire protocol v1: the bytes of requests and replies, apart from any socket.
//
// Every datagram starts with a 24-byte header, big-endian:
//
//  offset size  request                         reply
//       0    2  magic 0x48 0x53 ("HS")          magic
//       2    1  version = 1                     version
//       3    1  opcode = 1 (REQUEST)            opcode = 2 (REPLY)
//       4    1  flags (bit 0: TAG)              flags (bit 0: TAG)
//       5    1  0                               status: 0 OK, 1 UNAVAILABLE, 2 BAD_REQUEST
//       6    2  count: ids wanted (1..149)      count: ids in this reply
//       8    8  nonce (random, chosen by client) nonce, echoed
//      16    8  client time, ms since Unix epoch retry-after ms (u32) at 16; 0 at 20..23
//      24  8×n  padding, at least 8 × count     ids, big-endian u64
//  [end-16  16] HMAC-SHA256 tag (first 16 bytes), over everything before it, when flag TAG
//
// No reply is larger than the request that caused it: a request for n ids is at least
// 24 + 8n bytes (+16 with a tag), exactly the size of the reply. And no reply exceeds
// 1232 bytes, the payload that crosses any IPv6 path without fragmentation.

export const MAGIC_0 = 0x48;
export const MAGIC_1 = 0x53;
export const VERSION = 1;
export const OP_REQUEST = 1;
export const OP_REPLY = 2;
export const FLAG_TAG = 0x01;
export const KNOWN_FLAGS = FLAG_TAG;

export const STATUS_OK = 0;
export const STATUS_UNAVAILABLE = 1;
export const STATUS_BAD_REQUEST = 2;

export const HEADER_SIZE = 24;
export const TAG_SIZE = 16;
export const MAX_DATAGRAM = 1232;
/**
 * Longer datagrams are not requests and are dropped. A client pads a request to exactly the
 * size of its reply (at most MAX_DATAGRAM); the slack allows padding without inviting
 * 64 KiB datagrams, and every transport can receive this much whole.
 */
export const MAX_REQUEST_SIZE = 2048;
/** The most ids one reply carries: (1232 - 24 - 16) / 8. */
export const MAX_IDS_PER_REQUEST = Math.floor((MAX_DATAGRAM - HEADER_SIZE - TAG_SIZE) / 8);

/** Size of a request for `count` ids, which is also the size of its full reply. */
export function requestSize(count: number, tagged: boolean): number {
  return HEADER_SIZE + 8 * count + (tagged ? TAG_SIZE : 0);
}

export interface RequestHeader {
  tagged: boolean;
  count: number;
  nonceHigh: number;
  nonceLow: number;
  clientTimeMs: number;
}

/** Why a datagram is not a request the server answers. */
export type DropReason = 'malformed' | 'unauthenticated' | 'stale' | 'replayed' | 'not_allowed' | 'rate_limited';

export const PARSE_DROP = -1;
export const PARSE_BAD_REQUEST = -2;

/**
 * Reads the request header of buf[offset, offset + length) into `out`. Returns 0 for a
 * valid request, PARSE_DROP for anything that is not a hailstone v1 request (dropped
 * silently: too short, too long, wrong magic, version or opcode), PARSE_BAD_REQUEST for a
 * well-formed header with invalid fields (answered with BAD_REQUEST).
 */
export function parseRequest(buf: Uint8Array, out: RequestHeader, offset = 0, length = buf.length - offset): number {
  if (length < HEADER_SIZE || length > MAX_REQUEST_SIZE) return PARSE_DROP;
  const o = offset;
  if (buf[o] !== MAGIC_0 || buf[o + 1] !== MAGIC_1 || buf[o + 2] !== VERSION || buf[o + 3] !== OP_REQUEST) return PARSE_DROP;
  const flags = buf[o + 4]!;
  const tagged = (flags & FLAG_TAG) !== 0;
  if (tagged && length < HEADER_SIZE + TAG_SIZE) return PARSE_DROP;
  const count = (buf[o + 6]! << 8) | buf[o + 7]!;
  out.tagged = tagged;
  out.count = count;
  out.nonceHigh = readUint32(buf, o + 8);
  out.nonceLow = readUint32(buf, o + 12);
  out.clientTimeMs = readUint32(buf, o + 16) * 2 ** 32 + readUint32(buf, o + 20);
  if ((flags & ~KNOWN_FLAGS) !== 0 || buf[o + 5] !== 0) return PARSE_BAD_REQUEST;
  if (count < 1 || count > MAX_IDS_PER_REQUEST) return PARSE_BAD_REQUEST;
  if (length < requestSize(count, tagged)) return PARSE_BAD_REQUEST;
  return 0;
}

function readUint32(buf: Uint8Array, at: number): number {
  return ((buf[at]! << 24) | (buf[at + 1]! << 16) | (buf[at + 2]! << 8) | buf[at + 3]!) >>> 0;
}

/** Writes a request header (the caller pads and tags). */
export function writeRequestHeader(buf: Uint8Array, count: number, nonce: Uint8Array, clientTimeMs: number, tagged: boolean): void {
  buf[0] = MAGIC_0;
  buf[1] = MAGIC_1;
  buf[2] = VERSION;
  buf[3] = OP_REQUEST;
  buf[4] = tagged ? FLAG_TAG : 0;
  buf[5] = 0;
  buf[6] = count >>> 8;
  buf[7] = count & 0xff;
  buf.set(nonce.subarray(0, 8), 8);
  writeUint64(buf, 16, clientTimeMs);
}

/** Writes a reply header; the nonce is copied from the request. */
export function writeReplyHeader(buf: Uint8Array, request: Uint8Array, status: number, count: number, retryAfterMs: number, tagged: boolean): void {
  for (let i = 8; i < 16; i++) buf[i] = request[i]!;
  writeReplyOverRequest(buf, 0, status, count, retryAfterMs, tagged);
}

/**
 * Turns the request header at buf[offset] into its reply header, in place: the nonce at
 * 8..15 is the request's and stays; every other field is written.
 */
export function writeReplyOverRequest(buf: Uint8Array, offset: number, status: number, count: number, retryAfterMs: number, tagged: boolean): void {
  const o = offset;
  buf[o] = MAGIC_0;
  buf[o + 1] = MAGIC_1;
  buf[o + 2] = VERSION;
  buf[o + 3] = OP_REPLY;
  buf[o + 4] = tagged ? FLAG_TAG : 0;
  buf[o + 5] = status;
  buf[o + 6] = count >>> 8;
  buf[o + 7] = count & 0xff;
  const retry = Math.min(0xffffffff, Math.max(0, Math.ceil(retryAfterMs)));
  buf[o + 16] = retry >>> 24;
  buf[o + 17] = (retry >>> 16) & 0xff;
  buf[o + 18] = (retry >>> 8) & 0xff;
  buf[o + 19] = retry & 0xff;
  buf[o + 20] = buf[o + 21] = buf[o + 22] = buf[o + 23] = 0;
}

export interface ReplyHeader {
  tagged: boolean;
  status: number;
  count: number;
  retryAfterMs: number;
}

/** Reads a reply header; undefined when the datagram is not a well-formed v1 reply. */
export function parseReply(msg: Uint8Array): ReplyHeader | undefined {
  if (msg.length < HEADER_SIZE) return undefined;
  if (msg[0] !== MAGIC_0 || msg[1] !== MAGIC_1 || msg[2] !== VERSION || msg[3] !== OP_REPLY) return undefined;
  const flags = msg[4]!;
  if ((flags & ~KNOWN_FLAGS) !== 0) return undefined;
  const tagged = (flags & FLAG_TAG) !== 0;
  const status = msg[5]!;
  const count = (msg[6]! << 8) | msg[7]!;
  if (status > STATUS_BAD_REQUEST || count > MAX_IDS_PER_REQUEST) return undefined;
  if (status !== STATUS_OK && count !== 0) return undefined;
  if (msg.length !== HEADER_SIZE + 8 * count + (tagged ? TAG_SIZE : 0)) return undefined;
  const retryAfterMs = ((msg[16]! << 24) | (msg[17]! << 16) | (msg[18]! << 8) | msg[19]!) >>> 0;
  return { tagged, status, count, retryAfterMs };
}

function writeUint64(buf: Uint8Array, offset: number, value: number): void {
  const high = Math.floor(value / 2 ** 32);
  const low = value >>> 0;
  buf[offset] = high >>> 24;
  buf[offset + 1] = (high >>> 16) & 0xff;
  buf[offset + 2] = (high >>> 8) & 0xff;
  buf[offset + 3] = high & 0xff;
  buf[offset + 4] = low >>> 24;
  buf[offset + 5] = (low >>> 16) & 0xff;
  buf[offset + 6] = (low >>> 8) & 0xff;
  buf[offset + 7] = low & 0xff;
}
