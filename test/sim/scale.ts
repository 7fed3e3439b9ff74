// `npm run sim:scale`: what a whole fleet would ask of its coordinator, by simulation — a
// fleet of 1024 members (each a primary and its worker stripes) starting at once, then
// running steady: requests per claimant until every member serves, the time until then,
// and requests per second in steady state. No faults: this is the cost of the fleet, not of
// its troubles (npm run sim covers those).
//
//   npm run sim:scale                          # 1024 members × 16 stripes
//   npm run sim:scale -- --members 256 --workers 1
//
// Writes bench/results/fleet-sim-scale.json (HAILSTONE_BENCH_OUTPUT to write elsewhere).

import { writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { parseArgs } from 'node:util';
import { DEFAULT_MAX_LEAD_MS } from '../../src/generator.js';
import { simulate } from './simulator.js';

const { values } = parseArgs({
  options: {
    members: { type: 'string', default: '1024' },
    workers: { type: 'string', default: '16' },
    seconds: { type: 'string', default: '90' },
    seed: { type: 'string', default: '1' },
  },
});
const members = Number(values.members);
const stripes = Number(values.workers);
const seconds = Number(values.seconds);
const leaseTtlS = 10;
const maxLeadMs = DEFAULT_MAX_LEAD_MS;

const cpu = process.cpuUsage();
const started = Date.now();
const report = await simulate({
  seed: Number(values.seed),
  members,
  stripes,
  minutes: seconds / 60,
  faultsPerMinute: 0,
  fixed: { leaseTtlS, maxLeadMs, smallLayout: false, givenIds: false, backend: 'ts' },
  clientEveryMs: 1000,
});
const used = process.cpuUsage(cpu);
if (report.violation !== undefined) {
  console.error(`violation: ${report.violation.invariant}: ${report.violation.message}`);
  process.exit(1);
}
const allServingMs = Math.max(...report.firstServedAt);
const bySecond = report.requestsBySecond;
const allServingS = Math.ceil(allServingMs / 1000);
const coldRequests = bySecond[Math.min(allServingS, bySecond.length - 1)]!;
// Steady state: from 10 s after every member serves to the end of the run.
const from = Math.min(allServingS + 10, bySecond.length - 2);
const to = bySecond.length - 1;
const steadyPerSecond = (bySecond[to]! - bySecond[from]!) / (to - from);
const result = {
  machine: { cpu: cpus()[0]?.model ?? 'unknown', cores: cpus().length, node: process.version },
  command: `npm run sim:scale -- --members ${members} --workers ${stripes} --seconds ${seconds}`,
  date: new Date().toISOString(),
  members,
  stripes,
  leaseTtlS,
  maxLeadMs,
  allServingMs,
  coldStartRequests: coldRequests,
  coldStartRequestsPerMember: coldRequests / members,
  steadyRequestsPerSecond: steadyPerSecond,
  steadyRequestsPerSecondPerMember: steadyPerSecond / members,
  requestKinds: report.requestKinds,
  ids: report.ids,
  events: report.events,
  cpuSeconds: (used.user + used.system) / 1e6,
  wallSeconds: (Date.now() - started) / 1000,
};
console.log(
  `${members} members × ${stripes} stripes: every member serving ${(allServingMs / 1000).toFixed(1)} s after the start, ` +
    `${coldRequests} coordinator requests until then (${(coldRequests / members).toFixed(1)} per member); ` +
    `steady ${Math.round(steadyPerSecond)} requests/s (${(steadyPerSecond / members).toFixed(2)} per member); ` +
    `${report.ids} ids checked; ${result.cpuSeconds.toFixed(1)} s CPU; by kind ${JSON.stringify(report.requestKinds)}`,
);
writeFileSync(process.env.HAILSTONE_BENCH_OUTPUT ?? 'bench/results/fleet-sim-scale.json', `${JSON.stringify(result, null, 2)}\n`);
