// The generator step in plain TypeScript: the same rules as assembly/index.ts, over an
// explicit state and a clock reading passed in. No clock reads, no I/O, no globals — so
// every clock trace can be replayed exactly, and both cores can be compared id for id.
//
// Ids are built as two 32-bit halves in ordinary numbers, never as a BigInt, so fill()
// costs a few ns per id. Fields are disjoint bit ranges, so adding halves equals OR-ing.

import {
  STATUS_CLOCK_BEHIND,
  STATUS_CLOCK_BEFORE_EPOCH,
  STATUS_CLOCK_INVALID,
  STATUS_LAYOUT_EXPIRED,
  STATUS_LIMIT_REACHED,
  MAX_CLOCK_MS,
} from '../core/constants.js';
import type { CoreConfig } from './core.js';

export interface StepState {
  /** Tick of the last id issued; -1 before the first. */
  lastTick: number;
  /** Next sequence number in lastTick; past cfg.stripeLast when the tick is used up. */
  nextSeq: number;
  /** The last tick ids may use (the durable reservation); Infinity when unbounded. */
  limitTick: number;
  /** Set by a CLOCK_BEHIND refusal. */
  retryAfterMs: number;
}

export function initialState(cfg: CoreConfig): StepState {
  return { lastTick: -1, nextSeq: cfg.stripeLast + 1, limitTick: Infinity, retryAfterMs: 0 };
}

/** Precomputed halves of the parts of an id that do not change per call. */
export interface Packing {
  /** Bits below the time field: nodeBits + sequenceBits. */
  readonly timeShift: number;
  /** nodeId << sequenceBits, as 32-bit halves. */
  readonly nodeHigh: number;
  readonly nodeLow: number;
}

export function packing(cfg: CoreConfig): Packing {
  const q = cfg.sequenceBits; // <= 31, so the node field starts in the low word
  const split = 2 ** (32 - q);
  return {
    timeShift: cfg.nodeBits + cfg.sequenceBits,
    nodeHigh: Math.floor(cfg.nodeId / split),
    nodeLow: (cfg.nodeId % split) * 2 ** q,
  };
}

/** High 32 bits of tick << timeShift. */
export function tickHigh(p: Packing, tick: number): number {
  return p.timeShift >= 32 ? tick * 2 ** (p.timeShift - 32) : Math.floor(tick / 2 ** (32 - p.timeShift));
}

/** Low 32 bits of tick << timeShift. */
export function tickLow(p: Packing, tick: number): number {
  return p.timeShift >= 32 ? 0 : (tick % 2 ** (32 - p.timeShift)) * 2 ** p.timeShift;
}

/** The tick a clock reading falls in, or a negative status when the reading is unusable. */
function clockTick(cfg: CoreConfig, now: number): number {
  if (!(now >= -MAX_CLOCK_MS && now <= MAX_CLOCK_MS)) return STATUS_CLOCK_INVALID;
  if (now < cfg.epoch) return STATUS_CLOCK_BEFORE_EPOCH;
  return Math.floor((now - cfg.epoch) / cfg.tickMs);
}

/** 0 when `tick` may be used while the clock reads nowTick, a status otherwise. */
function admit(cfg: CoreConfig, st: StepState, tick: number, nowTick: number, now: number): number {
  if (tick > cfg.maxTick) return STATUS_LAYOUT_EXPIRED;
  if (tick - nowTick > cfg.leadTicks) {
    // The clock must reach tick - leadTicks before this tick is allowed.
    st.retryAfterMs = Math.ceil(cfg.epoch + (tick - cfg.leadTicks) * cfg.tickMs - now);
    return STATUS_CLOCK_BEHIND;
  }
  if (tick > st.limitTick) return STATUS_LIMIT_REACHED;
  return 0;
}

/**
 * The tick of the next id. The sequence is never reset before the clock check (Twitter
 * snowflake issue 6): when the clock stalls or steps back, the current tick goes on, and
 * when it is used up the next tick is borrowed.
 */
function candidateTick(cfg: CoreConfig, st: StepState, nowTick: number): number {
  if (nowTick > st.lastTick) return nowTick;
  if (st.nextSeq <= cfg.stripeLast) return st.lastTick;
  return st.lastTick + 1;
}

/**
 * Issues one id: on success returns its sequence number and leaves its tick in
 * st.lastTick; on refusal returns a negative status and leaves the state unchanged.
 */
export function stepNext(cfg: CoreConfig, st: StepState, now: number): number {
  const nowTick = clockTick(cfg, now);
  if (nowTick < 0) return nowTick;
  const tick = candidateTick(cfg, st, nowTick);
  const seq = tick === st.lastTick ? st.nextSeq : cfg.stripeFirst;
  const status = admit(cfg, st, tick, nowTick, now);
  if (status !== 0) return status;
  st.lastTick = tick;
  st.nextSeq = seq + 1;
  return seq;
}

/**
 * Issues up to `count` ids under one clock reading, written big-endian into `view` from
 * `byteOffset`. Returns how many (>= 1), or a negative status with the state unchanged.
 */
export function stepFill(
  cfg: CoreConfig,
  p: Packing,
  st: StepState,
  now: number,
  view: DataView,
  byteOffset: number,
  count: number,
): number {
  const nowTick = clockTick(cfg, now);
  if (nowTick < 0) return nowTick;
  let tick = candidateTick(cfg, st, nowTick);
  let seq = tick === st.lastTick ? st.nextSeq : cfg.stripeFirst;
  const status = admit(cfg, st, tick, nowTick, now);
  if (status !== 0) return status;

  let written = 0;
  let pos = byteOffset;
  for (;;) {
    const room = Math.min(cfg.stripeLast - seq + 1, count - written);
    const high = tickHigh(p, tick) + p.nodeHigh;
    const lowBase = tickLow(p, tick) + p.nodeLow;
    const stop = seq + room;
    for (; seq < stop; seq++) {
      view.setUint32(pos, high, false);
      view.setUint32(pos + 4, lowBase + seq, false);
      pos += 8;
    }
    written += room;
    if (written >= count) break;
    // The tick is used up: borrow the next one if the rules allow, otherwise stop here.
    if (admit(cfg, st, tick + 1, nowTick, now) !== 0) break;
    tick++;
    seq = cfg.stripeFirst;
  }
  st.lastTick = tick;
  st.nextSeq = seq;
  return written;
}

/** The id in (tick, seq) as a BigInt: built once from the two halves. */
export function idOf(p: Packing, tick: number, seq: number): bigint {
  const high = tickHigh(p, tick) + p.nodeHigh;
  const low = tickLow(p, tick) + p.nodeLow + seq;
  return (BigInt(high) << 32n) | BigInt(low);
}
