// The hailstone generator core in AssemblyScript.
//
// Raw functions over module globals and one static output region: no allocations, no
// runtime, no imports. Each generator owns one instance of this module, so the globals
// below are that generator's state. The TypeScript backend (src/backend/ts-step.ts)
// implements the same step; the differential tests hold the two to identical output.
//
// Times cross the boundary as f64 (milliseconds, ticks) so the hot path never makes a
// BigInt; only next() returns an i64, which JavaScript receives as one BigInt.

import {
  STATUS_CLOCK_BEHIND,
  STATUS_CLOCK_BEFORE_EPOCH,
  STATUS_LAYOUT_EXPIRED,
  STATUS_LIMIT_REACHED,
  STATUS_CLOCK_INVALID,
  FILL_BATCH_MAX,
  MAX_CLOCK_MS,
} from "../src/core/constants";

const CLOCK_LIMIT: f64 = <f64>MAX_CLOCK_MS;

// fill() writes big-endian ids here; the wrapper copies them into the caller's buffer.
const OUT: usize = memory.data(FILL_BATCH_MAX * 8, 16);

// Configuration (set once by configure()).
let epochMs: f64 = 0;
let tickMs: f64 = 1;
let timeShift: i64 = 22; // nodeBits + sequenceBits
let nodePart: i64 = 0; // nodeId << sequenceBits
let stripeBase: i64 = 0; // first sequence number of this worker's stripe
let stripeEnd: i64 = 0; // last sequence number of this worker's stripe
let leadTicks: i64 = 0; // how many ticks logical time may run ahead of the clock
let maxTick: i64 = 0; // last tick the time field can hold
let limitTick: i64 = i64.MAX_VALUE; // last tick the reservation allows

// State: the tick of the last id and the next sequence number in it. A sequence past
// stripeEnd means the tick is used up. Before the first id, last = -1.
let lastTick: i64 = -1;
let nextSeq: i64 = 0;

// Filled in by a refusal.
let retryAfter: f64 = 0;

export function configure(
  epoch: f64,
  tick: f64,
  timeBits: i32,
  nodeBits: i32,
  sequenceBits: i32,
  nodeId: i32,
  base: i32,
  end: i32,
  lead: f64,
): void {
  epochMs = epoch;
  tickMs = tick;
  timeShift = <i64>(nodeBits + sequenceBits);
  nodePart = <i64>nodeId << <i64>sequenceBits;
  stripeBase = <i64>base;
  stripeEnd = <i64>end;
  leadTicks = <i64>lead;
  maxTick = (<i64>1 << <i64>timeBits) - 1;
  limitTick = i64.MAX_VALUE;
  lastTick = -1;
  nextSeq = <i64>end + 1;
  retryAfter = 0;
}

// Ticks arrive as f64 (exact integers below 2^53); anything at or past 2^62 means "no limit".
function tickFromF64(t: f64): i64 {
  if (t >= 4611686018427387904.0) return i64.MAX_VALUE;
  if (t < -1.0) return -1;
  return <i64>t;
}

export function setLimitTick(t: f64): void {
  limitTick = tickFromF64(t);
}

// Never issue an id in tick t or earlier. Only ever moves logical time forward.
export function resumeAfterTick(t: f64): void {
  const floor = tickFromF64(t);
  if (floor >= lastTick) {
    lastTick = floor;
    nextSeq = stripeEnd + 1;
  }
}

export function getLastTick(): f64 {
  return <f64>lastTick;
}

export function getNextSequence(): f64 {
  return <f64>nextSeq;
}

export function getRetryAfterMs(): f64 {
  return retryAfter;
}

export function outputPointer(): usize {
  return OUT;
}

// The tick the clock reads, or a (negative) status when the reading is unusable.
// Callers check the status range first; a valid tick is >= 0.
@inline
function clockTick(now: f64): i64 {
  if (!(now >= -CLOCK_LIMIT && now <= CLOCK_LIMIT)) return STATUS_CLOCK_INVALID;
  if (now < epochMs) return STATUS_CLOCK_BEFORE_EPOCH;
  return <i64>Math.floor((now - epochMs) / tickMs);
}

// Whether `tick` may be used when the clock reads `nowTick`; 0 when it may, a status otherwise.
@inline
function admit(tick: i64, nowTick: i64, now: f64): i64 {
  if (tick > maxTick) return STATUS_LAYOUT_EXPIRED;
  if (tick - nowTick > leadTicks) {
    // The clock must reach the tick (tick - leadTicks) before this tick is allowed.
    retryAfter = Math.ceil(epochMs + <f64>(tick - leadTicks) * tickMs - now);
    return STATUS_CLOCK_BEHIND;
  }
  if (tick > limitTick) return STATUS_LIMIT_REACHED;
  return 0;
}

// Picks the slot (tick, sequence) of the next id without committing it. The sequence is
// never reset before the clock check: when the clock is behind, the current tick goes on.
@inline
function candidateTick(nowTick: i64): i64 {
  if (nowTick > lastTick) return nowTick;
  if (nextSeq <= stripeEnd) return lastTick;
  return lastTick + 1;
}

// One id, or a negative status. The id is returned as i64: the one BigInt JavaScript makes.
export function next(now: f64): i64 {
  const nowTick = clockTick(now);
  if (nowTick < 0) return nowTick;
  const tick = candidateTick(nowTick);
  const seq = tick == lastTick ? nextSeq : stripeBase;
  const status = admit(tick, nowTick, now);
  if (status != 0) return status;
  lastTick = tick;
  nextSeq = seq + 1;
  return (tick << timeShift) | nodePart | seq;
}

// Up to `count` ids (1..FILL_BATCH_MAX) written big-endian at OUT, all under one clock
// reading. Returns how many were written (>= 1) or a negative status when none may be.
export function fill(now: f64, count: i32): i32 {
  const nowTick = clockTick(now);
  if (nowTick < 0) return <i32>nowTick;
  let tick = candidateTick(nowTick);
  let seq = tick == lastTick ? nextSeq : stripeBase;
  const status = admit(tick, nowTick, now);
  if (status != 0) return <i32>status;

  let written: i32 = 0;
  let ptr = OUT;
  while (true) {
    // Ids in this tick: from seq to the end of the stripe, at most what is still wanted.
    let room = stripeEnd - seq + 1;
    const wanted = <i64>(count - written);
    if (room > wanted) room = wanted;
    const high = (tick << timeShift) | nodePart;
    const stop = seq + room;
    while (seq < stop) {
      store<u64>(ptr, bswap<u64>(<u64>(high | seq)));
      ptr += 8;
      seq++;
    }
    written += <i32>room;
    if (written >= count) break;
    // The tick is used up: borrow the next one if the rules allow, otherwise stop here.
    if (admit(tick + 1, nowTick, now) != 0) break;
    tick++;
    seq = stripeBase;
  }
  lastTick = tick;
  nextSeq = seq;
  return written;
}
