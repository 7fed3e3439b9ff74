// Seeds for randomized tests. Every randomized test prints the seed it ran with; set
// HAILSTONE_SEED to replay a run exactly, e.g. `HAILSTONE_SEED=123 npx vitest run test/x.test.ts`.

import fc from 'fast-check';

export function testSeed(label: string): number {
  const fromEnv = process.env.HAILSTONE_SEED;
  const seed = fromEnv !== undefined && fromEnv !== '' ? Number(fromEnv) : (Date.now() ^ (process.pid << 8)) >>> 0;
  if (!Number.isInteger(seed)) throw new Error(`HAILSTONE_SEED must be an integer, got ${fromEnv}`);
  console.log(`[seed] ${label}: HAILSTONE_SEED=${seed}`);
  return seed;
}

/** fast-check parameters with a printed, replayable seed. fast-check reports the seed and path on failure too. */
export function propertyParams(label: string, numRuns: number): fc.Parameters<unknown> {
  return { seed: testSeed(label), numRuns, verbose: 1 };
}

/** A small deterministic PRNG (mulberry32) for tests that draw many numbers outside fast-check. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
