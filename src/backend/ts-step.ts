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

/** Precomputed constants for building ids as two 32-bit halves. */
export interface Packing {
  /** Bits below the time field: nodeBits + sequenceBits. */
  readonly timeShift: number;
  /** nodeId << sequenceBits, as 32-bit halves. */
  readonly nodeHigh: number;
  readonly nodeLow: number;
  /** For timeShift < 32: ticks per unit of the high word, 2^(32 - timeShift), and 2^timeShift. */
  readonly tickSplit: number;
  readonly tickScale: number;
  /** For timeShift >= 32: 2^(timeShift - 32). */
  readonly tickHighScale: number;
}

export function packing(cfg: CoreConfig): Packing {
  const q = cfg.sequenceBits; // <= 31, so the node field starts in the low word
  const split = 2 ** (32 - q);
  const timeShift = cfg.nodeBits + cfg.sequenceBits;
  return {
    timeShift,
    nodeHigh: Math.floor(cfg.nodeId / split),
    nodeLow: (cfg.nodeId % split) * 2 ** q,
    tickSplit: timeShift < 32 ? 2 ** (32 - timeShift) : 0,
    tickScale: 2 ** Math.min(timeShift, 31),
    tickHighScale: timeShift >= 32 ? 2 ** (timeShift - 32) : 0,
  };
}

/** High 32 bits of tick << timeShift. */
export function tickHigh(p: Packing, tick: number): number {
  return p.timeShift >= 32 ? tick * p.tickHighScale : Math.floor(tick / p.tickSplit);
}

/** Low 32 bits of tick << timeShift. */
export function tickLow(p: Packing, tick: number): number {
  return p.timeShift >= 32 ? 0 : (tick - Math.floor(tick / p.tickSplit) * p.tickSplit) * p.tickScale;
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
 * Whether an id could be issued at `now`, without issuing it: 0, or the status a call would
 * return, with the ms to wait for a CLOCK_BEHIND. The state is not changed. Both cores
 * expose lastTick and the next sequence, so this answers for either backend.
 */
export function peekNext(cfg: CoreConfig, st: Readonly<StepState>, now: number): { status: number; retryAfterMs: number } {
  const nowTick = clockTick(cfg, now);
  if (nowTick < 0) return { status: nowTick, retryAfterMs: 0 };
  const copy = { ...st };
  const status = admit(cfg, copy, candidateTick(cfg, copy, nowTick), nowTick, now);
  return { status, retryAfterMs: status === STATUS_CLOCK_BEHIND ? copy.retryAfterMs : 0 };
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
    let low = tickLow(p, tick) + p.nodeLow + seq;
    const end = pos + 8 * room;
    for (; pos < end; pos += 8) {
      view.setUint32(pos, high, false);
      view.setUint32(pos + 4, low++, false);
    }
    seq += room;
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

// One scratch word: writing the halves and reading them back as one u64 makes a single
// BigInt, where shifting and OR-ing BigInts would make four.
const scratch = new DataView(new ArrayBuffer(8));

/** The id with the given halves as a BigInt. */
export function idFromHalves(high: number, low: number): bigint {
  scratch.setUint32(0, high, false);
  scratch.setUint32(4, low, false);
  return scratch.getBigUint64(0, false);
}
