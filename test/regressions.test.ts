// Regression tests for defects found in other Snowflake-style generators
// (see the design notes on peers). Each would fail if hailstone had the same bug.

import { describe, expect, it } from 'vitest';
import { createGenerator, decode, defineLayout, readIds, DEFAULT_LAYOUT, DEFAULT_EPOCH } from '../src/index.js';
import { BACKENDS } from './support/backends.js';
import { ManualClock } from './support/clock.js';

const T0 = DEFAULT_LAYOUT.epoch + 123_456_789;

describe.each(BACKENDS)('regressions of other generators (%s backend)', (backend) => {
  it('sequence does not wrap inside one tick (@sapphire/snowflake, sonyflake): 300k ids at a stalled clock, no duplicate', () => {
    const clock = new ManualClock(T0);
    const gen = createGenerator({ nodeId: 5, backend, clock: clock.read, maxLeadMs: 100 });
    const seen = new Set<bigint>();
    const buf = new Uint8Array(8 * 1000);
    for (let i = 0; i < 300; i++) {
      if (i % 3 === 0) clock.advance(1); // a clock far slower than the demand
      for (const id of readIds(buf, 0, gen.fill(buf))) seen.add(id);
    }
    expect(seen.size).toBe(300_000);
  });

  it('after an overflow borrows the next tick, the clock reaching that tick does not reuse sequence 0 (snowflake-id)', () => {
    const clock = new ManualClock(T0);
    const gen = createGenerator({ nodeId: 5, backend, clock: clock.read });
    const buf = new Uint8Array(8 * 4097);
    expect(gen.fill(buf)).toBe(4097);
    const borrowed = readIds(buf, 4096 * 8, 1)[0]!;
    expect(decode(borrowed)).toMatchObject({ timestamp: T0 + 1, sequence: 0 });
    clock.advance(1);
    const next = gen.nextId();
    expect(decode(next)).toMatchObject({ timestamp: T0 + 1, sequence: 1 });
    expect(next > borrowed).toBe(true);
  });

  it('a clock stepping back 10 ms gives no duplicates (nodejs-snowflake: 706)', () => {
    const clock = new ManualClock(T0);
    const gen = createGenerator({ nodeId: 5, backend, clock: clock.read });
    const seen = new Set<bigint>();
    const buf = new Uint8Array(8 * 1000);
    for (let round = 0; round < 20; round++) {
      for (let ms = 0; ms < 10; ms++) {
        clock.advance(1);
        for (const id of readIds(buf, 0, gen.fill(buf, 0, 300))) seen.add(id);
      }
      clock.advance(-10);
    }
    expect(seen.size).toBe(20 * 10 * 300);
  });

  it('the epoch is fixed by the layout, not by when a generator is created (nodejs-snowflake)', () => {
    const clock = new ManualClock(T0);
    const first = createGenerator({ nodeId: 5, backend, clock: clock.read }).nextId();
    clock.advance(60_000);
    const recreated = createGenerator({ nodeId: 5, backend, clock: clock.read }).nextId();
    expect(recreated > first).toBe(true);
    expect(decode(first).timestamp).toBe(T0);
    expect(DEFAULT_LAYOUT.epoch).toBe(DEFAULT_EPOCH);
    expect(new Date(DEFAULT_EPOCH).toISOString()).toBe('2025-01-01T00:00:00.000Z');
  });

  it('ids past 2^53 keep every digit: bigint and decimal strings, never a Number (flake-idgen users)', () => {
    // A month after the epoch, ids are already past 2^53.
    const clock = new ManualClock(DEFAULT_EPOCH + 40 * 86_400_000);
    const gen = createGenerator({ nodeId: 1023, backend, clock: clock.read });
    const a = gen.nextIdString();
    const b = gen.nextIdString();
    expect(BigInt(a) > 2n ** 53n).toBe(true);
    expect(BigInt(b) - BigInt(a)).toBe(1n);
    expect(Number(a) === Number(b)).toBe(true); // what a Number would have done to them
    expect(decode(b).sequence).toBe(1);
    expect(() => decode(Number(a) as unknown as bigint)).toThrow(RangeError);
  });

  it('the default layout never sets the sign bit and lasts until 2094 (flake-idgen overflows in 2039, sonyflake emits 65-bit ids)', () => {
    expect(new Date(DEFAULT_LAYOUT.expiresAt).getUTCFullYear()).toBe(2094);
    const clock = new ManualClock(DEFAULT_LAYOUT.expiresAt - 1);
    const gen = createGenerator({ nodeId: 1023, backend, clock: clock.read });
    const buf = new Uint8Array(8 * 4096);
    const n = gen.fill(buf);
    const ids = readIds(buf, 0, n);
    expect(ids[n - 1]).toBe(2n ** 63n - 1n);
    for (const id of ids) expect(id < 2n ** 63n).toBe(true);
    expect(() => gen.nextId()).toThrow(/LAYOUT|layout/);
    const wide = defineLayout({ timeBits: 31, nodeBits: 16, sequenceBits: 16 });
    expect(wide.timeBits + wide.nodeBits + wide.sequenceBits).toBe(63);
  });
});
