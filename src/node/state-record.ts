// The durable state record: a fixed 64-byte, checksummed binary record.
//
//  offset size field
//       0    4 magic "HSTN"
//       4    2 format version (1)
//       6    2 flags (0)
//       8    1 timeBits          9  1 nodeBits        10  1 sequenceBits   11  1 zero
//      12    4 tickMs
//      16    8 epoch, ms since the Unix epoch (float64, an exact integer)
//      24    4 nodeId           28  4 worker index    32  4 worker count   36  4 zero
//      40    8 reservedUntil: no id of this node/worker has a later timestamp (float64 ms)
//      48    8 writtenAt: the clock when the record was written (float64 ms, diagnostics)
//      56    4 zero
//      60    4 CRC-32 of bytes 0..59
// All integers big-endian. Zero fields must be zero: a record is either exactly right or rejected.

import { crc32 } from 'node:zlib';
import { MAX_CLOCK_MS } from '../core/constants.js';
import type { Layout } from '../layout.js';

export const RECORD_SIZE = 64;
export const RECORD_MAGIC = 0x4853544e; // "HSTN"
export const RECORD_VERSION = 1;

export interface StateRecord {
  timeBits: number;
  nodeBits: number;
  sequenceBits: number;
  tickMs: number;
  epoch: number;
  nodeId: number;
  workerIndex: number;
  workerCount: number;
  reservedUntil: number;
  writtenAt: number;
}

export function encodeRecord(r: StateRecord): Uint8Array {
  const bytes = new Uint8Array(RECORD_SIZE);
  const v = new DataView(bytes.buffer);
  v.setUint32(0, RECORD_MAGIC);
  v.setUint16(4, RECORD_VERSION);
  v.setUint16(6, 0);
  v.setUint8(8, r.timeBits);
  v.setUint8(9, r.nodeBits);
  v.setUint8(10, r.sequenceBits);
  v.setUint32(12, r.tickMs);
  v.setFloat64(16, r.epoch);
  v.setUint32(24, r.nodeId);
  v.setUint32(28, r.workerIndex);
  v.setUint32(32, r.workerCount);
  v.setFloat64(40, r.reservedUntil);
  v.setFloat64(48, r.writtenAt);
  v.setUint32(60, crc32(bytes.subarray(0, 60)));
  return bytes;
}

/** Why a record was rejected. */
export class RecordError extends Error {}

function isWholeMs(x: number): boolean {
  return Number.isInteger(x) && Math.abs(x) <= MAX_CLOCK_MS;
}

export function decodeRecord(bytes: Uint8Array): StateRecord {
  if (bytes.length !== RECORD_SIZE) {
    throw new RecordError(`it is ${bytes.length} bytes long, a state record is ${RECORD_SIZE} (truncated or not a hailstone state file)`);
  }
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (v.getUint32(0) !== RECORD_MAGIC) throw new RecordError('it does not start with the hailstone state magic "HSTN"');
  const version = v.getUint16(4);
  if (version !== RECORD_VERSION) throw new RecordError(`its format version is ${version}; this hailstone reads version ${RECORD_VERSION}`);
  if (crc32(bytes.subarray(0, 60)) !== v.getUint32(60)) throw new RecordError('its checksum does not match its content (the file is damaged)');
  if (v.getUint16(6) !== 0 || v.getUint8(11) !== 0 || v.getUint32(36) !== 0 || v.getUint32(56) !== 0) {
    throw new RecordError('reserved fields are not zero');
  }
  const record: StateRecord = {
    timeBits: v.getUint8(8),
    nodeBits: v.getUint8(9),
    sequenceBits: v.getUint8(10),
    tickMs: v.getUint32(12),
    epoch: v.getFloat64(16),
    nodeId: v.getUint32(24),
    workerIndex: v.getUint32(28),
    workerCount: v.getUint32(32),
    reservedUntil: v.getFloat64(40),
    writtenAt: v.getFloat64(48),
  };
  if (!isWholeMs(record.epoch) || !isWholeMs(record.reservedUntil) || !Number.isFinite(record.writtenAt)) {
    throw new RecordError('its times are not valid');
  }
  return record;
}

/** A layout's fields as stored in a record, as text for messages. */
export function recordLayoutText(r: Pick<StateRecord, 'timeBits' | 'nodeBits' | 'sequenceBits' | 'tickMs' | 'epoch'>): string {
  return `t${r.timeBits}.n${r.nodeBits}.s${r.sequenceBits}.e${r.epoch}.k${r.tickMs}`;
}

export function sameLayout(r: StateRecord, layout: Layout): boolean {
  return recordLayoutText(r) === layout.fingerprint;
}
