// Differential and property tests: random clock traces (stalls, repeats, steps back of
// 1 ms to 1 h, jumps forward) and random calls drive the WASM and the TypeScript backend
// side by side. They must return identical id streams and identical refusals, and every
// stream must obey the rules: strictly increasing, never past clock + maxLeadMs, never
// past the limit, never at or before a resumeAfter floor.

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  HailstoneError,
  createGenerator,
  decode,
  defineLayout,
  readIds,
  type Generator,
  type Layout,
} from '../src/index.js';
import { ManualClock } from './support/clock.js';
import { propertyParams } from './support/seed.js';

type Op =
  | { kind: 'clock'; delta: number }
  | { kind: 'next' }
  | { kind: 'string' }
  | { kind: 'fill'; count: number }
  | { kind: 'view'; count: number }
  | { kind: 'limit'; ahead: number }
  | { kind: 'unlimit' }
  | { kind: 'resume'; ahead: number };

const HOUR = 3_600_000;

const clockStep = fc.oneof(
  { weight: 6, arbitrary: fc.constant(0) }, // stall / repeat
  { weight: 6, arbitrary: fc.integer({ min: 1, max: 3 }) }, // normal progress
  { weight: 2, arbitrary: fc.integer({ min: -5, max: -1 }) }, // small step back
  { weight: 1, arbitrary: fc.integer({ min: -HOUR, max: -1 }) }, // step back up to an hour
  { weight: 1, arbitrary: fc.integer({ min: 1, max: HOUR }) }, // jump forward
);

const op: fc.Arbitrary<Op> = fc.oneof(
  { weight: 3, arbitrary: clockStep.map((delta) => ({ kind: 'clock' as const, delta })) },
  { weight: 4, arbitrary: fc.constant({ kind: 'next' as const }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'string' as const }) },
  { weight: 3, arbitrary: fc.oneof(fc.integer({ min: 1, max: 40 }), fc.integer({ min: 1, max: 3000 })).map((count) => ({ kind: 'fill' as const, count })) },
  { weight: 2, arbitrary: fc.integer({ min: 1, max: 1024 }).map((count) => ({ kind: 'view' as const, count })) },
  { weight: 1, arbitrary: fc.integer({ min: -20, max: 50 }).map((ahead) => ({ kind: 'limit' as const, ahead })) },
  { weight: 1, arbitrary: fc.constant({ kind: 'unlimit' as const }) },
  { weight: 1, arbitrary: fc.integer({ min: -20, max: 30 }).map((ahead) => ({ kind: 'resume' as const, ahead })) },
);

const layoutArb: fc.Arbitrary<Layout> = fc.oneof(
  fc.constant(defineLayout()),
  fc
    .record({
      timeBits: fc.integer({ min: 30, max: 41 }),
      nodeBits: fc.integer({ min: 1, max: 10 }),
      sequenceBits: fc.integer({ min: 1, max: 12 }),
      tickMs: fc.integer({ min: 1, max: 10 }),
    })
    .map((o) => defineLayout(o)),
);

const scenario = fc.record({
  layout: layoutArb,
  nodeSeed: fc.nat(),
  workerCount: fc.integer({ min: 1, max: 4 }),
  workerSeed: fc.nat(),
  maxLeadMs: fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 50 }), fc.constant(2000)),
  startOffset: fc.integer({ min: 0, max: 10 * 24 * HOUR }),
  ops: fc.array(op, { minLength: 1, maxLength: 120 }),
});

type Outcome = { ids: bigint[] } | { code: string; retryAfterMs: number | undefined };

function run(gen: Generator, f: () => bigint[]): Outcome {
  try {
    return { ids: f() };
  } catch (error) {
    if (!(error instanceof HailstoneError)) throw error;
    return { code: error.code, retryAfterMs: error.retryAfterMs };
  }
}

describe('WASM and TypeScript backends agree on random clock traces', () => {
  it('identical ids and refusals; every stream obeys the rules', () => {
    fc.assert(
      fc.property(scenario, (s) => {
        const { layout } = s;
        const nodeId = s.nodeSeed % (layout.maxNodeId + 1);
        const count = Math.min(s.workerCount, layout.idsPerTick);
        const worker = { index: s.workerSeed % count, count };
        const clock = new ManualClock(layout.epoch + s.startOffset);
        const make = (backend: 'wasm' | 'ts') =>
          createGenerator({ nodeId, backend, layout, worker, clock: clock.read, maxLeadMs: s.maxLeadMs });
        const gens = [make('wasm'), make('ts')] as const;
        const buf = new Uint8Array(8 * 3000);
        let limit = Infinity;
        let floor = -Infinity;
        let last = -1n;

        for (const o of s.ops) {
          if (o.kind === 'clock') {
            // Keep the clock inside the layout's lifetime; stepping before the epoch is tested elsewhere.
            clock.set(Math.max(layout.epoch, clock.now + o.delta));
            continue;
          }
          if (o.kind === 'limit' || o.kind === 'unlimit') {
            limit = o.kind === 'limit' ? clock.now + o.ahead * layout.tickMs : Infinity;
            for (const g of gens) g.setLimit(limit);
            continue;
          }
          if (o.kind === 'resume') {
            const at = clock.now + o.ahead * layout.tickMs;
            for (const g of gens) g.resumeAfter(at);
            floor = Math.max(floor, at);
            expect(gens[0].lastTimestamp()).toBe(gens[1].lastTimestamp());
            continue;
          }
          const outcomes = gens.map((g) =>
            run(g, () => {
              if (o.kind === 'next') return [g.nextId()];
              if (o.kind === 'string') return [BigInt(g.nextIdString())];
              if (o.kind === 'view') {
                const view = g.fillView(o.count);
                return readIds(view, 0, view.length / 8);
              }
              return readIds(buf, 0, g.fill(buf, 0, o.count));
            }),
          );
          expect(outcomes[1]).toEqual(outcomes[0]);
          expect(gens[1].lastTimestamp()).toBe(gens[0].lastTimestamp());
          const out = outcomes[0]!;
          if (!('ids' in out)) continue;
          const leadLimit = Math.floor(s.maxLeadMs / layout.tickMs) * layout.tickMs;
          const clockTickStart = layout.epoch + Math.floor((clock.now - layout.epoch) / layout.tickMs) * layout.tickMs;
          for (const id of out.ids) {
            // Plain checks per id (expect() per id would dominate the run time).
            const d = decode(id, { layout, workers: count });
            const broken =
              id <= last ? 'not increasing'
              : d.nodeId !== nodeId ? 'wrong node'
              : d.worker !== worker.index ? 'wrong worker stripe'
              : d.timestamp - clockTickStart > leadLimit ? 'more than maxLeadMs ahead of the clock'
              : d.timestamp > limit ? 'past the limit'
              // resumeAfter(ms): no id timestamped at or before ms. A timestamp is its tick's first ms, so
              // this also rules out the floor's own tick.
              : d.timestamp <= floor ? 'at or before the resumeAfter floor'
              : undefined;
            if (broken !== undefined) throw new Error(`id ${id} ${broken}: ${JSON.stringify({ ...d, id: String(id) })}`);
            last = id;
          }
        }
      }),
      propertyParams('differential', 500),
    );
  });
});
