// Composing, decoding and converting ids. Ids are bigint, decimal strings or 8 big-endian
// bytes; never a JS Number (they pass 2^53 within weeks of the epoch).

import { InvalidArgumentError, checkInteger, describe } from './errors.js';
import { DEFAULT_LAYOUT, type Layout, timestampOf, tickOf, workerStripe } from './layout.js';

export interface IdFields {
  /** ms since the Unix epoch: the start of the id's tick. */
  timestamp: number;
  nodeId: number;
  sequence: number;
}

export interface DecodedId extends IdFields {
  id: bigint;
  /** The worker stripe the sequence belongs to, when decode was told the worker count. */
  worker?: number;
}

export interface DecodeOptions {
  layout?: Layout;
  /** How many worker stripes the node ran with; decode then reports `worker`. */
  workers?: number;
}

const DECIMAL = /^[0-9]+$/;
const HEX = /^0[xX][0-9a-fA-F]+$/;
/** Longer text is refused before it is read: 20 digits plus room for zero padding. */
const MAX_ID_TEXT = 64;

function totalBits(layout: Layout): number {
  return layout.timeBits + layout.nodeBits + layout.sequenceBits;
}

/**
 * Parses and range-checks an id: a bigint, decimal digits (leading zeros allowed, as in a
 * zero-padded column) or 0x-prefixed hex (as `hailstone get --format hex` prints it). The
 * one parser of ids: the command line's `inspect` reads ids with it too.
 */
export function parseId(id: bigint | string, layout: Layout = DEFAULT_LAYOUT): bigint {
  let value: bigint;
  if (typeof id === 'bigint') {
    value = id;
  } else if (typeof id === 'string') {
    if (id.length > MAX_ID_TEXT || !(DECIMAL.test(id) || HEX.test(id))) {
      throw new InvalidArgumentError('id', `${describe(id)} is not an id: give it in decimal digits or hex (0x…)`);
    }
    value = BigInt(id);
  } else {
    // A Number above 2^53 is already rounded: it may name another id.
    throw new InvalidArgumentError('id', `must be a bigint or a string (decimal digits or 0x… hex), got ${describe(id)}`);
  }
  const limit = 1n << BigInt(totalBits(layout));
  if (value < 0n || value >= limit) {
    throw new InvalidArgumentError('id', `must be from 0 to ${limit - 1n} for this layout, got ${value}`);
  }
  return value;
}

/** Splits an id into its fields. Rejects anything that is not a valid id of the layout. */
export function decode(id: bigint | string, options: DecodeOptions = {}): DecodedId {
  const layout = options.layout ?? DEFAULT_LAYOUT;
  const value = parseId(id, layout);
  const sequence = Number(value & ((1n << BigInt(layout.sequenceBits)) - 1n));
  const nodeId = Number((value >> BigInt(layout.sequenceBits)) & ((1n << BigInt(layout.nodeBits)) - 1n));
  const tick = Number(value >> BigInt(layout.nodeBits + layout.sequenceBits));
  const decoded: DecodedId = { id: value, timestamp: timestampOf(layout, tick), nodeId, sequence };
  if (options.workers !== undefined) {
    const stripe = workerStripe(layout, { index: 0, count: options.workers });
    const worker = Math.floor(sequence / stripe.size);
    if (worker >= stripe.count) {
      throw new InvalidArgumentError(
        'id',
        `sequence ${sequence} lies past the last of ${stripe.count} worker stripes: no worker issues it`,
      );
    }
    decoded.worker = worker;
  }
  return decoded;
}

/** Builds the id for the given fields. The timestamp is rounded down to its tick. */
export function compose(fields: IdFields, layout: Layout = DEFAULT_LAYOUT): bigint {
  const { timestamp } = fields;
  if (typeof timestamp !== 'number' || !Number.isInteger(timestamp) || timestamp < layout.epoch || timestamp >= layout.expiresAt) {
    throw new InvalidArgumentError(
      'timestamp',
      `must be an integer ms from the layout's epoch ${layout.epoch} to before ${layout.expiresAt}, got ${describe(timestamp)}`,
    );
  }
  const nodeId = checkInteger('nodeId', fields.nodeId, 0, layout.maxNodeId);
  const sequence = checkInteger('sequence', fields.sequence, 0, layout.idsPerTick - 1);
  const tick = BigInt(tickOf(layout, timestamp));
  return (
    (tick << BigInt(layout.nodeBits + layout.sequenceBits)) |
    (BigInt(nodeId) << BigInt(layout.sequenceBits)) |
    BigInt(sequence)
  );
}

/** Reads one id written big-endian (as fill() writes them). */
export function readId(bytes: Uint8Array, offset = 0): bigint {
  checkInteger('offset', offset, 0, bytes.length - 8);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return view.getBigUint64(offset, false);
}

/** Reads `count` ids written big-endian from `offset` on. */
export function readIds(bytes: Uint8Array, offset = 0, count = Math.floor((bytes.length - offset) / 8)): bigint[] {
  checkInteger('offset', offset, 0, bytes.length);
  checkInteger('count', count, 0, Math.floor((bytes.length - offset) / 8));
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const ids = new Array<bigint>(count);
  for (let i = 0; i < count; i++) ids[i] = view.getBigUint64(offset + i * 8, false);
  return ids;
}
