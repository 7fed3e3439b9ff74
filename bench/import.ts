// What importing hailstone costs a program: each entry point imported by a fresh Node
// process, timed from before the import to after it, with the modules it loaded — next to
// a peer (@sapphire/snowflake) in the same run. Not a tinybench task: a cold import
// happens once per process, so each sample is a new process.
//
//   npm run bench:import     (after npm run build:ts; writes bench/results/import.json, then the
//                            docs from it: npm run bench:report)

import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { command, describeMachine, machine } from './machine.js';
import type { ImportResults, ImportRow } from './results.js';
import { importTable } from './tables.js';

const ROOT = fileURLToPath(new URL('../', import.meta.url));
const quick = process.env.HAILSTONE_BENCH_QUICK === '1';
const RUNS = quick ? 3 : 25;
const output = process.env.HAILSTONE_BENCH_OUTPUT ?? join(ROOT, 'bench/results/import.json');

// One sample: the import's wall time and how many modules (ES and CommonJS) it brought.
const probe = (specifier: string): string => `
  const { createRequire } = await import('node:module');
  const t0 = performance.now();
  await import(${JSON.stringify(specifier)});
  const ms = performance.now() - t0;
  const cjs = Object.keys(createRequire(import.meta.url).cache);
  console.log(JSON.stringify({ ms, cjs: cjs.length, etcd: cjs.filter((p) => /etcd3|grpc|protobuf/.test(p)).length }));`;

const targets: { specifier: string; what: string }[] = [
  { specifier: 'hailstone/generator', what: "import { createGenerator } from 'hailstone/generator'" },
  { specifier: 'hailstone/client', what: "import { createClient } from 'hailstone/client'" },
  { specifier: 'hailstone', what: "import … from 'hailstone' (everything; fleet mode not used)" },
  { specifier: '@sapphire/snowflake', what: "import { Snowflake } from '@sapphire/snowflake' (peer)" },
];

function quantile(sorted: number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
}

const m = machine();
console.log(`hailstone import benchmark — ${describeMachine(m)}; ${RUNS} fresh processes per row, interleaved`);
const samples = new Map<string, { ms: number; cjs: number; etcd: number }[]>(targets.map((t) => [t.specifier, []]));
// Interleaved, so a busy moment of the machine lands on every row alike.
for (let i = 0; i < RUNS; i++) {
  for (const t of targets) {
    const out = execFileSync(process.execPath, ['--input-type=module', '-e', probe(t.specifier)], { cwd: ROOT, encoding: 'utf8' });
    samples.get(t.specifier)!.push(JSON.parse(out));
  }
}
const results = targets.map((t): ImportRow => {
  const s = samples.get(t.specifier)!;
  const ms = s.map((x) => x.ms).sort((a, b) => a - b);
  return { task: t.what, specifier: t.specifier, medianMs: quantile(ms, 0.5), p90Ms: quantile(ms, 0.9), cjsModules: s[0]!.cjs, etcdModules: s[0]!.etcd };
});
const data: ImportResults = { machine: m, command: command('bench:import'), runs: RUNS, results };
console.log(importTable({ 'import.json': data }));
writeFileSync(output, `${JSON.stringify(data, null, 2)}\n`);
