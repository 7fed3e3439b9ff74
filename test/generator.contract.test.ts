// The generator contract. Every test runs against both backends: the WebAssembly core
// and the pure-TypeScript core must behave identically.

import { describe, expect, it } from 'vitest';
import {
  HailstoneError,
  InvalidArgumentError,
  createGenerator,
  decode,
  defineLayout,
  readIds,
  DEFAULT_LAYOUT,
  type Generator,
  type GeneratorOptions,
} from '../src/index.js';
import { BACKENDS } from './support/backends.js';
import { ManualClock } from './support/clock.js';

const EPOCH = DEFAULT_LAYOUT.epoch;
const T0 = EPOCH + 1_000_000_000;

function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (error) {
    return error;
  }
  throw new Error('expected a throw');
}

function refusal(fn: () => unknown): HailstoneError {
  const error = thrown(fn);
  expect(error).toBeInstanceOf(HailstoneError);
  return error as HailstoneError;
}

describe.each(BACKENDS)('generator contract (%s backend)', (backend) => {
  const make = (options: Partial<GeneratorOptions> & { clock: () => number }): Generator =>
    createGenerator({ nodeId: 7, backend, ...options });

  it('issues strictly increasing ids that decode to the clock, the node and a counting sequence', () => {
    const clock = new ManualClock(T0);
    const gen = make({ clock: clock.read });
    const a = gen.nextId();
    const b = gen.nextId();
    clock.advance(5);
    const c = gen.nextId();
    expect(typeof a).toBe('bigint');
    expect(a < b && b < c).toBe(true);
    expect(decode(a)).toEqual({ id: a, timestamp: T0, nodeId: 7, sequence: 0 });
    expect(decode(b)).toEqual({ id: b, timestamp: T0, nodeId: 7, sequence: 1 });
    expect(decode(c)).toEqual({ id: c, timestamp: T0 + 5, nodeId: 7, sequence: 0 });
    expect(gen.backend).toBe(backend);
  });

  it('nextIdString returns the decimal form of the next id', () => {
    const clock = new ManualClock(T0);
    const gen = make({ clock: clock.read });
    const s = gen.nextIdString();
    expect(s).toMatch(/^[1-9][0-9]*$/);
    expect(decode(s)).toMatchObject({ timestamp: T0, nodeId: 7, sequence: 0 });
    expect(BigInt(s) < gen.nextId()).toBe(true);
  });

  it('at a frozen clock: one tick of 4096, then borrowed ticks within the lead, then CLOCK_BEHIND without spinning', () => {
    const clock = new ManualClock(T0);
    const gen = make({ clock: clock.read, maxLeadMs: 1 });
    const ids: bigint[] = [];
    let error: unknown;
    let calls = 0;
    for (; calls < 10_000; calls++) {
      try {
        ids.push(gen.nextId());
      } catch (e) {
        error = e;
        break;
      }
    }
    // Tick T0 and the one tick the 1 ms lead allows: 2 × 4096 ids, then a refusal.
    expect(ids.length).toBe(8192);
    expect(decode(ids[4095]!)).toMatchObject({ timestamp: T0, sequence: 4095 });
    expect(decode(ids[4096]!)).toMatchObject({ timestamp: T0 + 1, sequence: 0 });
    expect(error).toBeInstanceOf(HailstoneError);
    expect((error as HailstoneError).code).toBe('CLOCK_BEHIND');
    // T0 + 2 would be 2 ms ahead; the clock must reach T0 + 1 first.
    expect((error as HailstoneError).retryAfterMs).toBe(1);
    // Every further call refuses at once, and the state is not disturbed by refusals.
    for (let i = 0; i < 100; i++) expect(refusal(() => gen.nextId()).code).toBe('CLOCK_BEHIND');
    clock.advance(1);
    expect(decode(gen.nextId())).toMatchObject({ timestamp: T0 + 2, sequence: 0 });
  });

  it('keeps counting on logical time when the clock steps back, within maxLeadMs, then refuses', () => {
    const clock = new ManualClock(T0);
    const gen = make({ clock: clock.read, maxLeadMs: 1000 });
    const before = gen.nextId();
    clock.set(T0 - 500);
    const during = gen.nextId();
    expect(during > before).toBe(true);
    expect(decode(during)).toMatchObject({ timestamp: T0, sequence: 1 });
    clock.set(T0 - 1001);
    const error = refusal(() => gen.nextId());
    expect(error.code).toBe('CLOCK_BEHIND');
    expect(error.retryAfterMs).toBe(1);
    expect(error.message).toMatch(/maxLeadMs \(1000 ms\)/);
    clock.set(T0 - 1000);
    expect(gen.nextId() > during).toBe(true);
  });

  it('absorbs a 1 s leap-second step back with the default lead', () => {
    const clock = new ManualClock(T0);
    const gen = make({ clock: clock.read });
    const ids = [gen.nextId()];
    clock.advance(-1000);
    for (let i = 0; i < 1000; i++) {
      ids.push(gen.nextId());
      clock.advance(1);
    }
    for (let i = 1; i < ids.length; i++) expect(ids[i]! > ids[i - 1]!).toBe(true);
  });

  it('never reuses a sequence number when the clock returns after stepping back (Twitter snowflake issue 6)', () => {
    const clock = new ManualClock(T0 + 1);
    const gen = make({ clock: clock.read });
    const first = [gen.nextId(), gen.nextId()];
    clock.set(T0);
    const behind = gen.nextId();
    clock.set(T0 + 1);
    const back = gen.nextId();
    const all = [...first, behind, back];
    expect(new Set(all).size).toBe(4);
    expect(all.map((id) => decode(id).sequence)).toEqual([0, 1, 2, 3]);
    expect(all.every((id) => decode(id).timestamp === T0 + 1)).toBe(true);
  });

  it('refuses a clock before the epoch, an invalid clock and a time past the layout', () => {
    const clock = new ManualClock(EPOCH - 1);
    const gen = make({ clock: clock.read });
    const early = refusal(() => gen.nextId());
    expect(early.code).toBe('CLOCK_BEFORE_EPOCH');
    expect(early.message).toMatch(/fix the system clock/);
    for (const bad of [Number.NaN, Infinity, -Infinity, 9e15]) {
      clock.set(bad);
      expect(refusal(() => gen.nextId()).code).toBe('CLOCK_INVALID');
      expect(refusal(() => gen.fill(new Uint8Array(8))).code).toBe('CLOCK_INVALID');
    }
    const small = defineLayout({ timeBits: 4, epoch: EPOCH });
    const late = new ManualClock(EPOCH + 15);
    const gen2 = createGenerator({ nodeId: 1, backend, layout: small, clock: late.read, maxLeadMs: 0 });
    expect(decode(gen2.nextId(), { layout: small }).timestamp).toBe(EPOCH + 15);
    late.set(EPOCH + 16);
    const expired = refusal(() => gen2.nextId());
    expect(expired.code).toBe('LAYOUT_EXPIRED');
    expect(expired.retryAfterMs).toBeUndefined();
  });

  it('does not wrap: the last tick of the layout is used up, then it refuses even while the lead would allow more', () => {
    const small = defineLayout({ timeBits: 3, nodeBits: 2, sequenceBits: 2, epoch: EPOCH });
    const clock = new ManualClock(EPOCH + 7);
    const gen = createGenerator({ nodeId: 3, backend, layout: small, clock: clock.read, maxLeadMs: 5 });
    const ids = [0, 1, 2, 3].map(() => gen.nextId());
    expect(ids.map((id) => decode(id, { layout: small }).sequence)).toEqual([0, 1, 2, 3]);
    expect(refusal(() => gen.nextId()).code).toBe('LAYOUT_EXPIRED');
  });

  it('fillView: the same ids fill() would write, in a view that is reused and valid until the next call', () => {
    const clock = new ManualClock(DEFAULT_LAYOUT.epoch + 1_000_000);
    const viaView = createGenerator({ nodeId: 9, backend, clock: clock.read });
    const viaFill = createGenerator({ nodeId: 9, backend, clock: clock.read });
    const buf = new Uint8Array(8 * 1024);
    for (const count of [1, 16, 1024, 5000 % 1024]) {
      const view = viaView.fillView(count);
      const n = viaFill.fill(buf, 0, count);
      expect(view.length).toBe(8 * n);
      expect(readIds(view, 0, n)).toEqual(readIds(buf, 0, n));
      clock.advance(1);
    }
    const a = viaView.fillView(4);
    const first = readIds(a, 0, 4);
    const b = viaView.fillView(4);
    expect(b.buffer).toBe(a.buffer); // no copy, no new buffer per call
    expect(readIds(a, 0, 4)).not.toEqual(first); // the old view now shows the new ids
    expect(() => viaView.fillView(0)).toThrow(/count/);
    expect(() => viaView.fillView(1025)).toThrow(/count/);
    clock.advance(-60_000);
    expect(() => viaView.fillView(1)).toThrow(expect.objectContaining({ code: 'CLOCK_BEHIND' }));
    expect(viaView.tryFillView(1)).toBeLessThan(0);
  });

  it('never issues an id past the limit, refuses with LIMIT_REACHED, and resumes when the limit moves', () => {
    const clock = new ManualClock(T0);
    const gen = make({ clock: clock.read, limit: T0 + 1 });
    gen.nextId();
    clock.set(T0 + 1);
    expect(decode(gen.nextId()).timestamp).toBe(T0 + 1);
    clock.set(T0 + 2);
    const error = refusal(() => gen.nextId());
    expect(error.code).toBe('LIMIT_REACHED');
    expect(error.retryAfterMs).toBeGreaterThan(0);
    // A borrowed tick may not pass the limit either.
    const buf = new Uint8Array(8 * 10_000);
    clock.set(T0 + 1);
    const n = gen.fill(buf);
    expect(n).toBe(4096 - 1);
    expect(readIds(buf, 0, n).every((id) => decode(id).timestamp === T0 + 1)).toBe(true);
    gen.setLimit(T0 + 3);
    clock.set(T0 + 2);
    expect(decode(gen.nextId()).timestamp).toBe(T0 + 2);
    gen.setLimit(Infinity);
    clock.set(T0 + 10);
    expect(decode(gen.nextId()).timestamp).toBe(T0 + 10);
  });

  it('resumeAfter moves logical time past a floor and never back', () => {
    const clock = new ManualClock(T0);
    const gen = make({ clock: clock.read, maxLeadMs: 2000 });
    expect(gen.lastTimestamp()).toBeUndefined();
    gen.resumeAfter(T0 + 100);
    expect(gen.lastTimestamp()).toBe(T0 + 100);
    expect(decode(gen.nextId()).timestamp).toBe(T0 + 101);
    gen.resumeAfter(T0 + 50);
    expect(decode(gen.nextId())).toMatchObject({ timestamp: T0 + 101, sequence: 1 });
    gen.resumeAfter(T0 + 101);
    expect(decode(gen.nextId())).toMatchObject({ timestamp: T0 + 102, sequence: 0 });
    // A floor beyond the lead: refuse until the clock catches up.
    gen.resumeAfter(T0 + 5000);
    const error = refusal(() => gen.nextId());
    expect(error.code).toBe('CLOCK_BEHIND');
    expect(error.retryAfterMs).toBe(5001 - 2000);
  });

  it('fill writes big-endian ids equal to what nextId would have issued, and returns the count', () => {
    const clockA = new ManualClock(T0);
    const clockB = new ManualClock(T0);
    const a = make({ clock: clockA.read });
    const b = make({ clock: clockB.read });
    const buf = new Uint8Array(8 * 40 + 3);
    expect(a.fill(buf, 3, 40)).toBe(40);
    const filled = readIds(buf, 3, 40);
    const one = Array.from({ length: 40 }, () => b.nextId());
    expect(filled).toEqual(one);
    expect(Array.from(buf.subarray(0, 3))).toEqual([0, 0, 0]);
    const view = new DataView(buf.buffer);
    expect(view.getBigUint64(3, false)).toBe(one[0]);
  });

  it('fill crosses borrowed ticks within the lead and stops at the lead with fewer than asked', () => {
    const clock = new ManualClock(T0);
    const gen = make({ clock: clock.read, maxLeadMs: 2 });
    const buf = new Uint8Array(8 * 20_000);
    const n = gen.fill(buf);
    expect(n).toBe(3 * 4096);
    const ids = readIds(buf, 0, n);
    for (let i = 1; i < n; i++) expect(ids[i]! > ids[i - 1]!).toBe(true);
    expect(decode(ids[n - 1]!)).toMatchObject({ timestamp: T0 + 2, sequence: 4095 });
    expect(refusal(() => gen.fill(buf)).code).toBe('CLOCK_BEHIND');
  });

  it('tryFill reports a refusal as a negative status, with the retry-after and the error fill would throw', () => {
    const clock = new ManualClock(T0);
    const gen = make({ clock: clock.read, maxLeadMs: 0 });
    const buf = new Uint8Array(8 * 5000);
    expect(gen.tryFill(buf, 0, 5000)).toBe(4096);
    const status = gen.tryFill(buf, 0, 1);
    expect(status).toBeLessThan(0);
    expect(gen.retryAfterMs(status)).toBe(1);
    const error = gen.refusalOf(status);
    expect(error).toBeInstanceOf(HailstoneError);
    expect(error.code).toBe('CLOCK_BEHIND');
    expect(error.retryAfterMs).toBe(1);
    expect(refusal(() => gen.fill(buf)).code).toBe('CLOCK_BEHIND');
    clock.set(EPOCH - 1);
    const early = gen.tryFill(buf, 0, 1);
    expect(gen.refusalOf(early).code).toBe('CLOCK_BEFORE_EPOCH');
    expect(gen.retryAfterMs(early)).toBeUndefined();
    expect(() => gen.tryFill(buf, 0, 0)).toThrow(InvalidArgumentError);
  });

  it('fill with more than the WASM batch size continues seamlessly', () => {
    const clock = new ManualClock(T0);
    const gen = make({ clock: clock.read });
    const buf = new Uint8Array(8 * 5000);
    expect(gen.fill(buf)).toBe(5000);
    const ids = readIds(buf);
    expect(new Set(ids).size).toBe(5000);
    for (let i = 1; i < ids.length; i++) expect(ids[i]! > ids[i - 1]!).toBe(true);
  });

  it('keeps worker stripes of one node apart', () => {
    const clock = new ManualClock(T0);
    const workers = [0, 1, 2].map((index) =>
      createGenerator({ nodeId: 9, backend, worker: { index, count: 3 }, clock: clock.read, maxLeadMs: 3 }),
    );
    const seen = new Set<bigint>();
    const buf = new Uint8Array(8 * 2000);
    for (const [index, gen] of workers.entries()) {
      const n = gen.fill(buf);
      // floor(4096 / 3) = 1365 per tick, four ticks (clock tick + 3 of lead).
      expect(n).toBe(2000);
      for (const id of readIds(buf, 0, n)) {
        const d = decode(id, { workers: 3 });
        expect(d.worker).toBe(index);
        expect(d.sequence).toBeGreaterThanOrEqual(index * 1365);
        expect(d.sequence).toBeLessThan(index * 1365 + 1365);
        seen.add(id);
      }
    }
    expect(seen.size).toBe(6000);
  });

  it('rejects bad arguments with InvalidArgumentError (a RangeError) naming the argument and the range', () => {
    const clock = new ManualClock(T0);
    for (const nodeId of [-1, 1024, 1.5, '7', Number.NaN, undefined, 7n]) {
      const error = thrown(() => createGenerator({ nodeId: nodeId as number, backend, clock: clock.read }));
      expect(error).toBeInstanceOf(RangeError);
      expect(error).toBeInstanceOf(InvalidArgumentError);
      expect((error as InvalidArgumentError).argument).toBe('nodeId');
      expect((error as Error).message).toMatch(/from 0 to 1023/);
    }
    const worker = thrown(() => make({ clock: clock.read, worker: { index: 2, count: 2 } })) as InvalidArgumentError;
    expect(worker.argument).toBe('worker.index');
    expect(worker.message).toMatch(/from 0 to 1/);
    expect((thrown(() => make({ clock: clock.read, worker: { index: 0, count: 5000 } })) as InvalidArgumentError).argument).toBe(
      'worker.count',
    );
    expect((thrown(() => make({ clock: clock.read, maxLeadMs: -1 })) as InvalidArgumentError).argument).toBe('maxLeadMs');
    expect((thrown(() => make({ clock: 5 as unknown as () => number })) as InvalidArgumentError).argument).toBe('clock');
    expect(
      (thrown(() => createGenerator({ nodeId: 1, backend: 'rust' as 'ts' })) as InvalidArgumentError).argument,
    ).toBe('backend');

    const gen = make({ clock: clock.read });
    const fillError = (fn: () => unknown) => thrown(fn) as InvalidArgumentError;
    expect(fillError(() => gen.fill(new Uint8Array(7))).argument).toBe('buffer');
    expect(fillError(() => gen.fill(new Uint8Array(16), 9)).argument).toBe('buffer');
    expect(fillError(() => gen.fill(new Uint8Array(16), 17)).argument).toBe('offset');
    expect(fillError(() => gen.fill(new Uint8Array(16), -1)).argument).toBe('offset');
    expect(fillError(() => gen.fill(new Uint8Array(16), 0, 3)).argument).toBe('count');
    expect(fillError(() => gen.fill(new Uint8Array(16), 0, 0)).argument).toBe('count');
    expect(fillError(() => gen.fill([1, 2] as unknown as Uint8Array)).argument).toBe('buffer');
    expect(fillError(() => gen.setLimit(Number.NaN)).argument).toBe('limit');
    expect(fillError(() => gen.resumeAfter(Infinity)).argument).toBe('timestampMs');
    // None of that consumed an id.
    expect(decode(gen.nextId()).sequence).toBe(0);
  });

  it('ids of 1024 nodes sharing a clock never collide, and the sign bit stays clear', () => {
    const clock = new ManualClock(T0);
    const seen = new Set<bigint>();
    const buf = new Uint8Array(8 * 64);
    for (let nodeId = 0; nodeId < 1024; nodeId++) {
      const gen = createGenerator({ nodeId, backend, clock: clock.read });
      for (const id of readIds(buf, 0, gen.fill(buf))) seen.add(id);
      seen.add(gen.nextId());
    }
    expect(seen.size).toBe(1024 * 65);
    for (const id of seen) expect(id < 1n << 63n).toBe(true);
  });
});
