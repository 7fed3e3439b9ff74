// The raw interface both generator cores implement: the WebAssembly module and the pure
// TypeScript step. The friendly API (src/generator.ts) sits on top of either one.
//
// A core never reads a clock: every call takes `now` (ms since the Unix epoch) so the
// tricky cases are driven from tests. Times other than `now` cross as ticks.

import type { Layout, WorkerStripe } from '../layout.js';

export interface CoreConfig {
  readonly epoch: number;
  readonly tickMs: number;
  readonly timeBits: number;
  readonly nodeBits: number;
  readonly sequenceBits: number;
  readonly nodeId: number;
  /** First and last sequence number of this worker's stripe, inclusive. */
  readonly stripeFirst: number;
  readonly stripeLast: number;
  /** How many ticks logical time may run ahead of the clock: floor(maxLeadMs / tickMs). */
  readonly leadTicks: number;
  /** The last tick the time field holds. */
  readonly maxTick: number;
}

export function coreConfig(layout: Layout, nodeId: number, stripe: WorkerStripe, maxLeadMs: number): CoreConfig {
  return Object.freeze({
    epoch: layout.epoch,
    tickMs: layout.tickMs,
    timeBits: layout.timeBits,
    nodeBits: layout.nodeBits,
    sequenceBits: layout.sequenceBits,
    nodeId,
    stripeFirst: stripe.first,
    stripeLast: stripe.last,
    leadTicks: Math.floor(maxLeadMs / layout.tickMs),
    maxTick: layout.maxTick,
  });
}

export interface RawCore {
  /** One id, or a negative status (src/core/constants.ts) as a bigint. */
  next(now: number): bigint;
  /**
   * Up to `count` ids written big-endian into `target` from `offset`, under one clock
   * reading. Returns how many (>= 1), or a negative status when not one may be issued.
   */
  fill(now: number, target: Uint8Array, offset: number, count: number): number;
  /**
   * Up to `count` (<= FILL_BATCH_MAX) ids, big-endian, in a view of the core's own output
   * buffer — no copy — valid until the next call into the core; or a negative status.
   */
  fillView(now: number, count: number): Uint8Array | number;
  /** After a CLOCK_BEHIND status: ms until the clock will have caught up enough. */
  retryAfterMs(): number;
  /** Never issue an id in a tick after `tick`. */
  setLimitTick(tick: number): void;
  /** Never issue an id in `tick` or earlier; only ever moves logical time forward. */
  resumeAfterTick(tick: number): void;
  /** The tick of the last id issued (or of the floor set by resumeAfterTick); -1 before any. */
  lastTick(): number;
  /** The sequence number the next id in lastTick() would take; past the stripe when it is used up. */
  nextSequence(): number;
}
