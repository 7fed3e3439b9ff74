// The WASM core's memory is one fixed page: it never grows, however many ids it makes.

import { describe, expect, it } from 'vitest';
import { createGenerator } from '../src/index.js';
import { instantiateCore } from '../src/backend/wasm-loader.js';
import { ManualClock } from './support/clock.js';

describe('WASM core memory', () => {
  it('is one 64 KiB page with a maximum of one page', () => {
    const core = instantiateCore();
    expect(core.memory.buffer.byteLength).toBe(65536);
    const memory = core.memory as unknown as { grow(pages: number): number };
    expect(() => memory.grow(1)).toThrow(RangeError);
  });

  it('does not grow over millions of ids through nextId and fill', () => {
    const clock = new ManualClock(Date.UTC(2026, 0, 1));
    const gen = createGenerator({ nodeId: 1, backend: 'wasm', clock: clock.read });
    // Reach the instance behind the public API to watch its memory.
    const core = (gen as unknown as { core: { memoryBytes(): number } }).core;
    const before = core.memoryBytes();
    const buf = new Uint8Array(8 * 4096);
    let total = 0;
    for (let i = 0; i < 1000; i++) {
      clock.advance(1);
      total += gen.fill(buf);
      gen.nextId();
    }
    expect(total).toBeGreaterThan(3_000_000);
    expect(core.memoryBytes()).toBe(before);
    expect(before).toBe(65536);
  });
});
