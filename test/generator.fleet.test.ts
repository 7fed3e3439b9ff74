// 1024 generators (every node id of the default layout), each with its own randomly
// misbehaving clock: steps back, stalls and jumps. No id may appear twice.

import { describe, expect, it } from 'vitest';
import { HailstoneError, createGenerator, readIds, DEFAULT_LAYOUT } from '../src/index.js';
import { BACKENDS } from './support/backends.js';
import { ManualClock } from './support/clock.js';
import { prng, testSeed } from './support/seed.js';

describe.each(BACKENDS)('1024 nodes with independent random clocks (%s backend)', (backend) => {
  it('zero duplicates', () => {
    const random = prng(testSeed(`fleet-${backend}`));
    const seen = new Set<bigint>();
    let issued = 0;
    let refused = 0;
    const buf = new Uint8Array(8 * 300);
    const start = DEFAULT_LAYOUT.epoch + 500_000_000;
    for (let nodeId = 0; nodeId < 1024; nodeId++) {
      // Every node's clock starts within the same few ms, so the fleet's ids share ticks.
      const clock = new ManualClock(start + Math.floor(random() * 5));
      const gen = createGenerator({ nodeId, backend, clock: clock.read, maxLeadMs: Math.floor(random() * 3) });
      for (let step = 0; step < 40; step++) {
        const r = random();
        if (r < 0.15) clock.advance(-Math.floor(random() * 4));
        else if (r < 0.5) clock.advance(Math.floor(random() * 2));
        try {
          const ids = random() < 0.5 ? [gen.nextId()] : readIds(buf, 0, gen.fill(buf, 0, 1 + Math.floor(random() * 300)));
          for (const id of ids) seen.add(id);
          issued += ids.length;
        } catch (error) {
          if (!(error instanceof HailstoneError) || error.code !== 'CLOCK_BEHIND') throw error;
          refused++;
        }
      }
    }
    expect(issued).toBeGreaterThan(1024 * 40);
    expect(refused).toBeGreaterThan(0);
    expect(seen.size).toBe(issued);
  });
});
