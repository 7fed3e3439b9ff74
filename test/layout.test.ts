import { describe, expect, it } from 'vitest';
import { InvalidArgumentError, defineLayout, describeLayout, workerStripe, DEFAULT_LAYOUT } from '../src/index.js';

function argumentOf(fn: () => unknown): string {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(RangeError);
    return (error as InvalidArgumentError).argument;
  }
  throw new Error('expected a throw');
}

describe('defineLayout', () => {
  it('defaults to 0 | 41-bit ms since 2025-01-01 | 10-bit node | 12-bit sequence and says what that implies', () => {
    expect(DEFAULT_LAYOUT).toMatchObject({
      timeBits: 41,
      nodeBits: 10,
      sequenceBits: 12,
      epoch: Date.UTC(2025, 0, 1),
      tickMs: 1,
      maxNodeId: 1023,
      idsPerTick: 4096,
      idsPerSecond: 4_096_000,
      maxTick: 2 ** 41 - 1,
    });
    expect(new Date(DEFAULT_LAYOUT.expiresAt).toISOString()).toBe('2094-09-07T15:47:35.552Z');
    expect(describeLayout(DEFAULT_LAYOUT)).toMatch(/41-bit time .* runs out 2094-09-07.*0\.\.1023.*4096 ids per tick/);
  });

  it('accepts custom widths, epochs and ticks', () => {
    const l = defineLayout({ timeBits: 39, nodeBits: 16, sequenceBits: 8, tickMs: 10, epoch: new Date('2024-06-01T00:00:00Z') });
    expect(l.maxNodeId).toBe(65535);
    expect(l.idsPerSecond).toBe(25_600);
    expect(l.fingerprint).toBe(`t39.n16.s8.e${Date.UTC(2024, 5, 1)}.k10`);
    expect(l.expiresAt).toBe(Date.UTC(2024, 5, 1) + 2 ** 39 * 10);
  });

  it('rejects invalid layouts with a RangeError naming the field and why', () => {
    expect(argumentOf(() => defineLayout({ timeBits: 0 }))).toBe('layout.timeBits');
    expect(argumentOf(() => defineLayout({ timeBits: 41.5 }))).toBe('layout.timeBits');
    expect(argumentOf(() => defineLayout({ nodeBits: 0 }))).toBe('layout.nodeBits');
    expect(argumentOf(() => defineLayout({ nodeBits: 32 }))).toBe('layout.nodeBits');
    expect(argumentOf(() => defineLayout({ sequenceBits: -1 }))).toBe('layout.sequenceBits');
    expect(argumentOf(() => defineLayout({ tickMs: 0 }))).toBe('layout.tickMs');
    expect(argumentOf(() => defineLayout({ tickMs: 1.5 }))).toBe('layout.tickMs');
    expect(argumentOf(() => defineLayout({ epoch: new Date('nope') }))).toBe('layout.epoch');
    expect(argumentOf(() => defineLayout({ epoch: 1.5 }))).toBe('layout.epoch');
    expect(argumentOf(() => defineLayout({ timeBits: 42 }))).toBe('layout');
    expect(() => defineLayout({ timeBits: 42 })).toThrow(/is 64, at most 63 fit: the sign bit stays 0/);
  });
});

describe('workerStripe', () => {
  it('cuts the sequence space into disjoint contiguous stripes', () => {
    expect(workerStripe(DEFAULT_LAYOUT)).toMatchObject({ index: 0, count: 1, first: 0, last: 4095, size: 4096 });
    expect(workerStripe(DEFAULT_LAYOUT, { index: 1, count: 2 })).toMatchObject({ first: 2048, last: 4095 });
    expect(workerStripe(DEFAULT_LAYOUT, { index: 2, count: 3 })).toMatchObject({ first: 2730, last: 4094, size: 1365 });
    expect(argumentOf(() => workerStripe(DEFAULT_LAYOUT, { index: 3, count: 3 }))).toBe('worker.index');
    expect(argumentOf(() => workerStripe(DEFAULT_LAYOUT, { index: 0, count: 0 }))).toBe('worker.count');
  });
});
