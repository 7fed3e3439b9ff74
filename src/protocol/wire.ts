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
 * Reads a request header into `out`. Returns 0 for a valid request, PARSE_DROP for
 * anything that is not a hailstone v1 request (dropped silently), PARSE_BAD_REQUEST for a
 * well-formed header with invalid fields (answered with BAD_REQUEST).
 */
export function parseRequest(msg: Uint8Array, out: RequestHeader): number {
  if (msg.length < HEADER_SIZE) return PARSE_DROP;
  if (msg[0] !== MAGIC_0 || msg[1] !== MAGIC_1 || msg[2] !== VERSION || msg[3] !== OP_REQUEST) return PARSE_DROP;
  const flags = msg[4]!;
  const tagged = (flags & FLAG_TAG) !== 0;
  if (tagged && msg.length < HEADER_SIZE + TAG_SIZE) return PARSE_DROP;
  const count = (msg[6]! << 8) | msg[7]!;
  out.tagged = tagged;
  out.count = count;
  out.nonceHigh = ((msg[8]! << 24) | (msg[9]! << 16) | (msg[10]! << 8) | msg[11]!) >>> 0;
  out.nonceLow = ((msg[12]! << 24) | (msg[13]! << 16) | (msg[14]! << 8) | msg[15]!) >>> 0;
  out.clientTimeMs =
    (((msg[16]! << 24) | (msg[17]! << 16) | (msg[18]! << 8) | msg[19]!) >>> 0) * 2 ** 32 +
    (((msg[20]! << 24) | (msg[21]! << 16) | (msg[22]! << 8) | msg[23]!) >>> 0);
  if ((flags & ~KNOWN_FLAGS) !== 0 || msg[5] !== 0) return PARSE_BAD_REQUEST;
  if (count < 1 || count > MAX_IDS_PER_REQUEST) return PARSE_BAD_REQUEST;
  if (msg.length < requestSize(count, tagged)) return PARSE_BAD_REQUEST;
  return 0;
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
  buf[0] = MAGIC_0;
  buf[1] = MAGIC_1;
  buf[2] = VERSION;
  buf[3] = OP_REPLY;
  buf[4] = tagged ? FLAG_TAG : 0;
  buf[5] = status;
  buf[6] = count >>> 8;
  buf[7] = count & 0xff;
  for (let i = 8; i < 16; i++) buf[i] = request[i]!;
  const retry = Math.min(0xffffffff, Math.max(0, Math.ceil(retryAfterMs)));
  buf[16] = retry >>> 24;
  buf[17] = (retry >>> 16) & 0xff;
  buf[18] = (retry >>> 8) & 0xff;
  buf[19] = retry & 0xff;
  buf[20] = buf[21] = buf[22] = buf[23] = 0;
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
