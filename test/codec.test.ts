import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { InvalidArgumentError, compose, decode, defineLayout, parseId, readId, DEFAULT_LAYOUT } from '../src/index.js';
import { MAX_CLOCK_MS } from '../src/core/constants.js';
import { propertyParams } from './support/seed.js';

const layouts = [
  DEFAULT_LAYOUT,
  defineLayout({ timeBits: 31, nodeBits: 16, sequenceBits: 16, tickMs: 7 }),
  defineLayout({ timeBits: 61, nodeBits: 1, sequenceBits: 1 }),
  defineLayout({ timeBits: 1, nodeBits: 31, sequenceBits: 31 }),
];

describe('compose and decode', () => {
  it.each(layouts.map((l) => [l.fingerprint, l] as const))('decode(compose(x)) is x over the whole field ranges (%s)', (_, layout) => {
    // Timestamps up to the layout's end, capped at the range of a JS Date.
    const lastTick = Math.min(layout.maxTick, Math.floor((MAX_CLOCK_MS - layout.epoch) / layout.tickMs));
    const fields = fc.record({
      tick: fc.oneof(fc.constantFrom(0, lastTick), fc.integer({ min: 0, max: lastTick })),
      nodeId: fc.oneof(fc.constantFrom(0, layout.maxNodeId), fc.integer({ min: 0, max: layout.maxNodeId })),
      sequence: fc.oneof(fc.constantFrom(0, layout.idsPerTick - 1), fc.integer({ min: 0, max: layout.idsPerTick - 1 })),
    });
    fc.assert(
      fc.property(fields, ({ tick, nodeId, sequence }) => {
        const timestamp = layout.epoch + tick * layout.tickMs;
        const id = compose({ timestamp, nodeId, sequence }, layout);
        expect(id >= 0n && id < 1n << 63n).toBe(true);
        expect(decode(id, { layout })).toEqual({ id, timestamp, nodeId, sequence });
        expect(decode(id.toString(), { layout }).id).toBe(id);
      }),
      propertyParams(`codec-${layout.fingerprint}`, 500),
    );
  });

  it('the largest id of the default layout is 2^63 - 1: the sign bit is never set', () => {
    const id = compose({ timestamp: DEFAULT_LAYOUT.expiresAt - 1, nodeId: 1023, sequence: 4095 });
    expect(id).toBe(2n ** 63n - 1n);
    expect(decode(id).timestamp).toBe(DEFAULT_LAYOUT.expiresAt - 1);
  });

  it('decode reports the worker stripe when told the worker count', () => {
    const id = compose({ timestamp: DEFAULT_LAYOUT.epoch, nodeId: 1, sequence: 2048 + 5 });
    expect(decode(id, { workers: 2 }).worker).toBe(1);
    expect(decode(id).worker).toBeUndefined();
    const unused = compose({ timestamp: DEFAULT_LAYOUT.epoch, nodeId: 1, sequence: 4095 });
    expect(() => decode(unused, { workers: 3 })).toThrow(/past the last of 3 worker stripes/);
  });

  it('rejects anything that is not an id of the layout', () => {
    for (const bad of ['', '-1', '1e3', ' 1', '1 ', '+1', '0x', '0x-1', '0b11', '1_000', 'x10', '9223372036854775808', '0x8000000000000000', '99999999999999999999999', `${'0'.repeat(64)}1`, 12, 2 ** 60, null, -1n, 2n ** 63n]) {
      expect(() => decode(bad as string)).toThrow(InvalidArgumentError);
    }
    expect(() => parseId(2n ** 8n, defineLayout({ timeBits: 2, nodeBits: 3, sequenceBits: 3 }))).toThrow(/from 0 to 255/);
    expect(parseId('9223372036854775807')).toBe(2n ** 63n - 1n);
  });

  it('parseId reads an id as the command line takes it: bigint, decimal with leading zeros, 0x hex in either case', () => {
    const id = compose({ timestamp: DEFAULT_LAYOUT.epoch + 123_456_789, nodeId: 607, sequence: 1543 });
    const hex = id.toString(16).padStart(16, '0');
    for (const text of [id.toString(), `000${id}`, `0x${hex}`, `0X${hex.toUpperCase()}`, `0x${id.toString(16)}`]) {
      expect(parseId(text), text).toBe(id);
      expect(decode(text).id, text).toBe(id);
    }
    expect(parseId('01')).toBe(1n);
    expect(parseId('0x10')).toBe(16n);
    expect(parseId('0')).toBe(0n);
    expect(parseId(`${'0'.repeat(44)}9223372036854775807`)).toBe(2n ** 63n - 1n);
    expect(parseId('0x7fffffffffffffff')).toBe(2n ** 63n - 1n);
    // The message says what is accepted; a Number is refused for the precision it lost.
    expect(() => parseId('zz')).toThrow(/^id: "zz" is not an id: give it in decimal digits or hex \(0x…\)$/);
    expect(() => parseId(2 ** 60 as unknown as string)).toThrow(/must be a bigint or a string/);
  });

  it('compose rejects out-of-range fields naming them', () => {
    const arg = (f: () => unknown) => {
      try {
        f();
      } catch (e) {
        return (e as InvalidArgumentError).argument;
      }
      return 'no throw';
    };
    const t = DEFAULT_LAYOUT.epoch;
    expect(arg(() => compose({ timestamp: t - 1, nodeId: 0, sequence: 0 }))).toBe('timestamp');
    expect(arg(() => compose({ timestamp: DEFAULT_LAYOUT.expiresAt, nodeId: 0, sequence: 0 }))).toBe('timestamp');
    expect(arg(() => compose({ timestamp: t, nodeId: 1024, sequence: 0 }))).toBe('nodeId');
    expect(arg(() => compose({ timestamp: t, nodeId: 0, sequence: 4096 }))).toBe('sequence');
  });

  it('readId reads big-endian bytes', () => {
    const bytes = new Uint8Array([9, 0, 0, 0, 0, 0, 0, 1, 2]);
    expect(readId(bytes, 1)).toBe(0x0102n);
    expect(() => readId(bytes, 2)).toThrow(RangeError);
  });
});
