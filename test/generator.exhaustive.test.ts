// Exhaustive checks on layouts small enough to enumerate: every id each node and worker
// can produce over every tick is produced exactly once, and all nodes together cover
// the id space without overlap.

import { describe, expect, it } from 'vitest';
import { HailstoneError, createGenerator, defineLayout, workerStripe } from '../src/index.js';
import { BACKENDS } from './support/backends.js';
import { ManualClock } from './support/clock.js';

const layout = defineLayout({ timeBits: 2, nodeBits: 2, sequenceBits: 3, epoch: 0 });

/** Draws every id a generator gives, one tick at a time, until the layout runs out. */
function drain(backend: 'wasm' | 'ts', nodeId: number, worker: { index: number; count: number }, useFill: boolean): bigint[] {
  const clock = new ManualClock(0);
  const gen = createGenerator({ nodeId, backend, layout, worker, clock: clock.read, maxLeadMs: 0 });
  const ids: bigint[] = [];
  const buf = new Uint8Array(8 * 3);
  for (let tick = 0; tick < 4; tick++) {
    clock.set(tick);
    for (;;) {
      try {
        if (useFill) {
          const n = gen.fill(buf);
          const view = new DataView(buf.buffer);
          for (let i = 0; i < n; i++) ids.push(view.getBigUint64(i * 8));
        } else {
          ids.push(gen.nextId());
        }
      } catch (error) {
        expect(error).toBeInstanceOf(HailstoneError);
        expect((error as HailstoneError).code).toBe(tick === 3 ? 'LAYOUT_EXPIRED' : 'CLOCK_BEHIND');
        break;
      }
    }
  }
  return ids;
}

describe.each(BACKENDS)('exhaustive small layout (%s backend)', (backend) => {
  for (const workers of [1, 2, 3, 8]) {
    for (const useFill of [false, true]) {
      it(`${workers} worker(s), ${useFill ? 'fill' : 'nextId'}: each reachable id exactly once across all nodes`, () => {
        const all: bigint[] = [];
        const expected = new Set<bigint>();
        for (let nodeId = 0; nodeId <= layout.maxNodeId; nodeId++) {
          for (let index = 0; index < workers; index++) {
            const stripe = workerStripe(layout, { index, count: workers });
            all.push(...drain(backend, nodeId, { index, count: workers }, useFill));
            for (let tick = 0; tick < 4; tick++) {
              for (let seq = stripe.first; seq <= stripe.last; seq++) {
                expected.add((BigInt(tick) << 5n) | (BigInt(nodeId) << 3n) | BigInt(seq));
              }
            }
          }
        }
        expect(new Set(all).size).toBe(all.length);
        expect(new Set(all)).toEqual(expected);
        // With a worker count dividing 8, the nodes cover the whole 7-bit space.
        if (8 % workers === 0) expect(all.length).toBe(128);
      });
    }
  }
});
