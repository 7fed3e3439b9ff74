// Latency at a fixed rate (open loop): one `hailstone serve --transport native` process and
// the bare C echo (bench/mmsg-echo.c) loaded alike by bench/open-load.c at 25k, 50k and
// 100k single-id requests per second. Latency counts from each request's scheduled send
// time, so queueing anywhere — server, kernel, generator — is in the figure, not hidden.
//
//   npm run bench:latency                 about a minute; writes bench/results/latency.json, then
//                                         the docs from it (npm run bench:report)
//   HAILSTONE_BENCH_QUICK=1 npm run bench:latency     a short smoke run

import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT, buildC, openLoad, startHailstoneNative, startProcess } from './harness.js';
import { command, describeMachine, machine } from './machine.js';
import type { LatencyResults, LatencyRow } from './results.js';
import { latencyTable } from './tables.js';

const quick = process.env.HAILSTONE_BENCH_QUICK === '1';
const output = process.env.HAILSTONE_BENCH_OUTPUT ?? join(ROOT, 'bench/results/latency.json');
const seconds = Number(process.env.HAILSTONE_BENCH_SECONDS ?? (quick ? '1' : '10'));
const rates = (process.env.HAILSTONE_BENCH_RATES ?? (quick ? '5000' : '25000,50000,100000')).split(',').map(Number);

const m = machine();
console.log(`hailstone latency at a fixed rate (open loop) — ${describeMachine(m)}${quick ? ' (quick)' : ''}; ${seconds} s per row after 1 s warmup`);
const load = buildC('open-load', 'no open-loop generator');
const echo = buildC('mmsg-echo', 'no C echo baseline');
if (load === undefined || echo === undefined) throw new Error('bench:latency needs a C compiler (cc) for its load generator and baseline');
const rows: LatencyRow[] = [];
for (const rate of rates) {
  // Interleaved: each rate runs hailstone, then the echo, back to back.
  for (const server of ['hailstone native', 'C mmsg echo'] as const) {
    const started = server === 'C mmsg echo' ? await startProcess(echo, [], /echo listening on (\d+)/) : await startHailstoneNative();
    try {
      rows.push({ server, ...(await openLoad(load, started.port, rate, seconds * 1000, server === 'C mmsg echo')) });
    } finally {
      await started.stop();
    }
  }
}
const data: LatencyResults = { machine: m, command: command('bench:latency'), quick, seconds, results: rows };
console.log(latencyTable({ 'latency.json': data }));
writeFileSync(output, `${JSON.stringify(data, null, 2)}\n`);
