// `npm run sim:scale`: what a whole fleet would ask of its coordinator, by simulation, and
// how fast the simulator runs. A fleet of 1024 members — with one stripe, then 16 worker
// stripes each — starts at once and runs steady: requests per member until every member
// serves, the time until then, and requests per second in steady state. No faults: this is
// the fleet's cost, not its troubles (`npm run sim` covers those). Then the suite's seed
// band (16 members, 10 simulated minutes, ≥ 100 faults), for the CPU one seed costs.
//
//   npm run sim:scale
//   HAILSTONE_SIM_MEMBERS=256 npm run sim:scale
//
// Writes bench/results/fleet-sim.json (HAILSTONE_BENCH_OUTPUT to write elsewhere); the
// report (npm run bench:report) puts it in docs/fleet.md and docs/benchmarks.md.

import { writeFileSync } from 'node:fs';
import { DEFAULT_MAX_LEAD_MS } from '../../src/generator.js';
import { machine } from '../../bench/machine.js';
import type { FleetSimResults, FleetSimRow } from '../../bench/results.js';
import { simulate } from './simulator.js';

// Quick (the suite's smoke run): 16 members for 40 s, one seed of the band.
const quick = process.env.HAILSTONE_SIM_QUICK === '1';
const members = Number(process.env.HAILSTONE_SIM_MEMBERS ?? (quick ? 16 : 1024));
const seconds = quick ? 40 : 90;
const leaseTtlS = 10;
const maxLeadMs = DEFAULT_MAX_LEAD_MS;

function cpuSince(start: NodeJS.CpuUsage): number {
  const used = process.cpuUsage(start);
  return (used.user + used.system) / 1e6;
}

async function coldStart(stripes: number): Promise<FleetSimRow> {
  const cpu = process.cpuUsage();
  const report = await simulate({
    seed: 1,
    members,
    stripes,
    minutes: seconds / 60,
    faultsPerMinute: 0,
    fixed: { leaseTtlS, maxLeadMs, smallLayout: false, givenIds: false, backend: 'ts' },
    clientEveryMs: 1000,
  });
  if (report.violation !== undefined) throw new Error(`violation: ${report.violation.invariant}: ${report.violation.message}`);
  const allServingMs = Math.max(...report.firstServedAt);
  const bySecond = report.requestsBySecond;
  const allServingS = Math.min(Math.ceil(allServingMs / 1000), bySecond.length - 1);
  const coldStartRequests = bySecond[allServingS]!;
  // Steady state: from 10 s after every member serves to the end of the run.
  const from = Math.min(allServingS + 10, bySecond.length - 2);
  const to = bySecond.length - 1;
  const steady = (bySecond[to]! - bySecond[from]!) / (to - from);
  const row: FleetSimRow = {
    members,
    stripes,
    leaseTtlS,
    maxLeadMs,
    allServingMs,
    coldStartRequestsPerMember: coldStartRequests / members,
    steadyRequestsPerSec: steady,
    steadyRequestsPerSecPerMember: steady / members,
    requestKinds: report.requestKinds,
    ids: report.ids,
    cpuSeconds: cpuSince(cpu),
  };
  console.log(
    `${members} members × ${stripes} stripe(s): every member serving ${(allServingMs / 1000).toFixed(1)} s after the start, ` +
      `${row.coldStartRequestsPerMember.toFixed(1)} coordinator requests per member until then; steady ${Math.round(steady)} requests/s ` +
      `(${row.steadyRequestsPerSecPerMember.toFixed(2)} per member); ${report.ids} ids checked; ${row.cpuSeconds.toFixed(1)} s CPU`,
  );
  return row;
}

const rows = [await coldStart(1), await coldStart(16)];

// The band of npm test: CPU per seed.
const seeds = quick ? 1 : 12;
const cpu = process.cpuUsage();
let faults = Infinity;
let ids = 0;
for (let seed = 1; seed <= seeds; seed++) {
  const report = await simulate({ seed });
  if (report.violation !== undefined) throw new Error(`seed ${seed}: ${report.violation.invariant}: ${report.violation.message}`);
  faults = Math.min(faults, report.faults);
  ids += report.ids;
}
const band = { seeds, members: 16, minutes: 10, fewestFaults: faults, ids, cpuSecondsPerSeed: cpuSince(cpu) / seeds };
console.log(`band: ${seeds} seeds of 16 members × 10 simulated minutes (≥ ${faults} faults each): ${band.cpuSecondsPerSeed.toFixed(2)} s CPU per seed, ${ids} ids checked`);

const results: FleetSimResults = { machine: machine(), command: 'npm run sim:scale', ...(quick ? { quick } : {}), rows, band };
writeFileSync(process.env.HAILSTONE_BENCH_OUTPUT ?? 'bench/results/fleet-sim.json', `${JSON.stringify(results, null, 2)}\n`);
