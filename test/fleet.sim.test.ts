// The fleet simulator in the suite (test/sim/): a fixed band of seeds with every invariant,
// the same trace for the same seed, a failure report that replays, and proof that it finds
// the past fleet bugs when they are switched back on (src/fleet/mutations.ts). Longer runs:
// `npm run sim -- --seeds 10000`.

import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import type { FleetMutation } from '../src/fleet/mutations.js';
import { type SimReport, firstRepeat, simulate } from './sim/simulator.js';

/** The band every run of the suite checks: 16 members, 10 simulated minutes, ≥ 100 faults each. */
const BAND = Array.from({ length: 12 }, (_, i) => i + 1);

function failure(report: SimReport): string {
  const v = report.violation;
  if (v === undefined) return '';
  return [`seed ${report.seed}: ${v.invariant} at ${v.at} ms: ${v.message}`, ...report.lastEvents.slice(-15), `replay: npm run sim -- --seed ${report.seed}`].join('\n');
}

/** Seeds run until the simulator reports a violation: the seed, or undefined within `limit`. */
async function seedsToFailure(mutation: FleetMutation, limit: number): Promise<SimReport | undefined> {
  for (let seed = 1; seed <= limit; seed++) {
    const report = await simulate({ seed, mutation });
    if (report.violation !== undefined) return report;
  }
  return undefined;
}

describe('the fleet simulator', () => {
  it(`a band of ${BAND.length} seeds — 16 members, 10 simulated minutes, at least 100 faults each: no id twice, every invariant holds`, async () => {
    let ids = 0;
    const worlds = new Set<string>();
    for (const seed of BAND) {
      const report = await simulate({ seed });
      if (report.stateDirs) worlds.add('state dirs');
      if (report.givenIds > 0) worlds.add('given ids');
      if (report.givenIds < report.members) worlds.add('free ids');
      expect(report.violation, failure(report)).toBeUndefined();
      expect(report.faults).toBeGreaterThanOrEqual(100);
      expect(report.ids).toBeGreaterThan(10_000);
      // Every refusal was explained by a fault or a start; count them as carefully as ids.
      expect(Object.values(report.refusedBy).reduce((a, b) => a + b, 0)).toBe(report.refusals);
      ids += report.ids;
    }
    // The band draws every kind of world: state dirs on the simulated disk, given and free ids.
    expect([...worlds].sort()).toEqual(['free ids', 'given ids', 'state dirs']);
    console.log(`[sim] ${BAND.length} seeds, ${ids} ids checked`);
  }, 240_000);

  it('worker stripes: a primary claims and keeps the reservation, four workers serve under its claim', async () => {
    for (const seed of [1, 2]) {
      const report = await simulate({ seed, stripes: 4 });
      expect(report.violation, failure(report)).toBeUndefined();
      expect(report.ids).toBeGreaterThan(10_000);
    }
  }, 120_000);

  it('the uniqueness check over a whole run finds a repeated id, and names its first two issues', () => {
    expect(firstRepeat(new BigUint64Array([5n, 1n, 9n, 2n ** 63n - 1n]))).toBeUndefined();
    expect(firstRepeat(new BigUint64Array([]))).toBeUndefined();
    // 7 and 3 both repeat; 3's second issue (position 4) comes before 7's (position 5).
    expect(firstRepeat(new BigUint64Array([7n, 3n, 1n, 8n, 3n, 7n]))).toEqual([1, 4]);
    expect(firstRepeat(new BigUint64Array([2n ** 63n - 1n, 0n, 2n ** 63n - 1n]))).toEqual([0, 2]);
  });

  it('the same seed gives the same trace, event for event; another seed another', async () => {
    const a = await simulate({ seed: 7, members: 8, minutes: 3 });
    const b = await simulate({ seed: 7, members: 8, minutes: 3 });
    const c = await simulate({ seed: 8, members: 8, minutes: 3 });
    expect(a.events).toBeGreaterThan(1000);
    expect(b.traceHash).toBe(a.traceHash);
    expect(b.events).toBe(a.events);
    expect(b.ids).toBe(a.ids);
    expect(c.traceHash).not.toBe(a.traceHash);
  }, 60_000);

  // Seeds to failure, as measured: docs/guarantees.md has the table. The limit is the 200.
  it.each<[FleetMutation, string]>([
    ['resume-below-floor', 'one-holder'],
    ['deposed-leader-fences', 'needless-fence'],
    ['landed-write-fences', 'needless-fence'],
    ['claim-wait-from-start', 'needless-exit'],
    ['far-ahead-taken', 'needless-exit'],
    ['no-claim-compare', 'needless-fence'],
  ])('finds the past bug %s within 200 seeds (as a %s violation)', async (mutation, invariant) => {
    const found = await seedsToFailure(mutation, 200);
    expect(found, `${mutation}: no violation in 200 seeds`).toBeDefined();
    expect(found!.violation!.invariant).toBe(invariant);
    console.log(`[sim] ${mutation}: seed ${found!.seed}, ${found!.violation!.invariant}`);
  }, 240_000);

  it('a failure prints the seed, the violation, the events before it and the line that replays it; the exit code is 1', () => {
    const run = spawnSync('npx', ['tsx', 'test/sim/run.ts', '--seed', '1', '--mutation', 'deposed-leader-fences', '--minutes', '2'], { encoding: 'utf8', timeout: 120_000 });
    expect(run.status, run.stderr).toBe(1);
    expect(run.stdout).toMatch(/^seed 1: FAILED/m);
    expect(run.stdout).toMatch(/^seed 1: needless-fence violated at [\d.]+ ms: member \d+ was fenced/m);
    expect(run.stdout).toMatch(/^last events:\n( {2}[\d.]+ .+\n)+/m);
    expect(run.stdout).toMatch(/^replay: npm run sim -- --seed 1 --members 16 --minutes 2 --mutation deposed-leader-fences$/m);
  }, 150_000);
});
