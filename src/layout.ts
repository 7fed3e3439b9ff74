// The bit layout of an id: 0 | time | node | sequence, most significant bit first.
// The sign bit is always 0, so ids fit a signed 64-bit column (Postgres BIGINT, Java long).

import { MAX_CLOCK_MS, MAX_NODE_BITS, MAX_SEQUENCE_BITS, MAX_TOTAL_BITS } from './core/constants.js';
import { InvalidArgumentError, checkInteger, describe } from './errors.js';

export interface LayoutOptions {
  /** Width of the time field. Default 41 (69.7 years of milliseconds). */
  timeBits?: number;
  /** Width of the node id field. Default 10 (1024 nodes). */
  nodeBits?: number;
  /** Width of the sequence field. Default 12 (4096 ids per tick per node). */
  sequenceBits?: number;
  /** Time zero of the time field, as a Date or ms since the Unix epoch. Default 2025-01-01T00:00:00.000Z. */
  epoch?: Date | number;
  /** Length of one tick of the time field in ms. Default 1. */
  tickMs?: number;
}

export interface Layout {
  readonly timeBits: number;
  readonly nodeBits: number;
  readonly sequenceBits: number;
  /** ms since the Unix epoch. */
  readonly epoch: number;
  readonly tickMs: number;
  /** The largest node id: 2^nodeBits - 1. */
  readonly maxNodeId: number;
  /** Sequence numbers per tick per node: 2^sequenceBits. */
  readonly idsPerTick: number;
  /** The most ids one node can issue per second: idsPerTick * 1000 / tickMs. */
  readonly idsPerSecond: number;
  /** The last tick the time field holds: 2^timeBits - 1 (approximate above 2^53). */
  readonly maxTick: number;
  /** The first moment (ms since the Unix epoch) that no longer fits the time field. */
  readonly expiresAt: number;
  /** A short string naming every field; stored with durable state to detect a changed layout. */
  readonly fingerprint: string;
}

export const DEFAULT_EPOCH = Date.UTC(2025, 0, 1);

function toEpochMs(epoch: Date | number): number {
  const ms = epoch instanceof Date ? epoch.getTime() : epoch;
  if (typeof ms !== 'number' || !Number.isInteger(ms) || Math.abs(ms) > MAX_CLOCK_MS) {
    throw new InvalidArgumentError(
      'layout.epoch',
      `must be a valid Date or an integer number of ms since the Unix epoch, got ${describe(epoch)}`,
    );
  }
  return ms;
}

/**
 * Validates a layout and computes what it implies. Throws InvalidArgumentError (a
 * RangeError) naming the field that is wrong.
 */
export function defineLayout(options: LayoutOptions = {}): Layout {
  const timeBits = checkInteger('layout.timeBits', options.timeBits ?? 41, 1, MAX_TOTAL_BITS - 2);
  const nodeBits = checkInteger('layout.nodeBits', options.nodeBits ?? 10, 1, MAX_NODE_BITS);
  const sequenceBits = checkInteger('layout.sequenceBits', options.sequenceBits ?? 12, 1, MAX_SEQUENCE_BITS);
  const total = timeBits + nodeBits + sequenceBits;
  if (total > MAX_TOTAL_BITS) {
    throw new InvalidArgumentError(
      'layout',
      `timeBits + nodeBits + sequenceBits is ${total}, at most ${MAX_TOTAL_BITS} fit: ` +
        'the sign bit stays 0 so ids fit a signed 64-bit integer',
    );
  }
  const tickMs = checkInteger('layout.tickMs', options.tickMs ?? 1, 1, 2 ** 32);
  const epoch = toEpochMs(options.epoch ?? DEFAULT_EPOCH);
  const idsPerTick = 2 ** sequenceBits;
  const maxTick = 2 ** timeBits - 1;
  return Object.freeze({
    timeBits,
    nodeBits,
    sequenceBits,
    epoch,
    tickMs,
    maxNodeId: 2 ** nodeBits - 1,
    idsPerTick,
    idsPerSecond: (idsPerTick * 1000) / tickMs,
    maxTick,
    expiresAt: epoch + 2 ** timeBits * tickMs,
    fingerprint: `t${timeBits}.n${nodeBits}.s${sequenceBits}.e${epoch}.k${tickMs}`,
  });
}

export const DEFAULT_LAYOUT: Layout = defineLayout();

/** The tick a clock reading (ms since the Unix epoch) falls in; negative before the epoch. */
export function tickOf(layout: Layout, ms: number): number {
  return Math.floor((ms - layout.epoch) / layout.tickMs);
}

/** The first ms (since the Unix epoch) of a tick: the timestamp ids of that tick carry. */
export function timestampOf(layout: Layout, tick: number): number {
  return layout.epoch + tick * layout.tickMs;
}

export interface WorkerOptions {
  /** This process's stripe, 0..count-1. */
  index: number;
  /** How many stripes the node's sequence space is cut into. */
  count: number;
}

export interface WorkerStripe {
  readonly index: number;
  readonly count: number;
  /** First and last sequence number of the stripe, inclusive. */
  readonly first: number;
  readonly last: number;
  /** Sequence numbers per tick in the stripe. */
  readonly size: number;
}

/**
 * The worker's contiguous slice of each tick's sequence space: stripe i of n holds
 * [i * size, i * size + size - 1] with size = floor(2^sequenceBits / n). Distinct stripes
 * never overlap, so processes sharing one node id never issue the same id.
 */
export function workerStripe(layout: Layout, worker: WorkerOptions = { index: 0, count: 1 }): WorkerStripe {
  const count = checkInteger('worker.count', worker.count, 1, layout.idsPerTick);
  const index = checkInteger('worker.index', worker.index, 0, count - 1);
  const size = Math.floor(layout.idsPerTick / count);
  const first = index * size;
  return Object.freeze({ index, count, first, last: first + size - 1, size });
}

/** A human summary of a layout, for logs and the CLI. */
export function describeLayout(layout: Layout): string {
  const expires = Math.abs(layout.expiresAt) <= MAX_CLOCK_MS ? new Date(layout.expiresAt).toISOString() : 'never';
  return (
    `${layout.timeBits}-bit time (${layout.tickMs} ms ticks since ${new Date(layout.epoch).toISOString()}, ` +
    `runs out ${expires}), ${layout.nodeBits}-bit node (0..${layout.maxNodeId}), ` +
    `${layout.sequenceBits}-bit sequence (${layout.idsPerTick} ids per tick per node)`
  );
}
