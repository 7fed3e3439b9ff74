// `npm run sim`: one seed, or many, of the fleet simulator (test/sim/simulator.ts).
//
//   npm run sim -- --seed 7 --members 16 --minutes 30
//   npm run sim -- --seeds 10000            # seeds 1…10000 (or --from N)
//   npm run sim -- --seed 7 --workers 4     # each member a primary and 4 worker stripes
//   npm run sim -- --seeds 200 --mutation no-claim-compare --stop-at-first
//
// A failure prints the seed, the first violation, the last events before it and the one
// line that replays it; the exit code is 1.

import { parseArgs } from 'node:util';
import { FLEET_MUTATIONS, type FleetMutation } from '../../src/fleet/mutations.js';
import { type SimReport, simulate } from './simulator.js';

const { values } = parseArgs({
  options: {
    seed: { type: 'string' },
    seeds: { type: 'string' },
    from: { type: 'string', default: '1' },
    members: { type: 'string', default: '16' },
    minutes: { type: 'string', default: '10' },
    workers: { type: 'string', default: '1' },
    'faults-per-minute': { type: 'string', default: '12' },
    json: { type: 'boolean', default: false },
    mutation: { type: 'string' },
    'stop-at-first': { type: 'boolean', default: false },
  },
});

const members = Number(values.members);
const minutes = Number(values.minutes);
const stripes = Number(values.workers);
const faultsPerMinute = Number(values['faults-per-minute']);
const mutation = values.mutation as FleetMutation | undefined;
if (mutation !== undefined && !FLEET_MUTATIONS.includes(mutation)) {
  console.error(`--mutation must be one of ${FLEET_MUTATIONS.join(', ')}`);
  process.exit(2);
}

function replay(seed: number): string {
  return `npm run sim -- --seed ${seed} --members ${members} --minutes ${minutes}${stripes === 1 ? '' : ` --workers ${stripes}`}${faultsPerMinute === 12 ? '' : ` --faults-per-minute ${faultsPerMinute}`}${mutation === undefined ? '' : ` --mutation ${mutation}`}`;
}

function failure(report: SimReport): string {
  const v = report.violation!;
  return [
    `seed ${report.seed}: ${v.invariant} violated at ${v.at} ms: ${v.message}`,
    'last events:',
    ...report.lastEvents.map((line) => `  ${line}`),
    `replay: ${replay(report.seed)}`,
  ].join('\n');
}

async function main(): Promise<number> {
  const seeds = values.seed !== undefined ? [Number(values.seed)] : Array.from({ length: Number(values.seeds ?? 100) }, (_, i) => Number(values.from) + i);
  let failed = 0;
  let ran = 0;
  const started = process.cpuUsage();
  for (const seed of seeds) {
    const cpu = process.cpuUsage();
    const report = await simulate({ seed, members, minutes, faultsPerMinute, mutation, stripes });
    ran++;
    const used = process.cpuUsage(cpu);
    const cpuMs = Math.round((used.user + used.system) / 1000);
    if (values.json) console.log(JSON.stringify({ ...report, lastEvents: undefined, cpuMs }));
    else if (seeds.length === 1 || report.violation !== undefined) {
      const availability = Math.min(...report.availability);
      console.log(
        `seed ${seed}: ${report.violation === undefined ? 'ok' : 'FAILED'} — ${members} members${stripes === 1 ? '' : ` × ${stripes} workers`}, ${minutes} min, TTL ${report.leaseTtlS} s, lead ${report.maxLeadMs} ms, ${report.givenIds} given ids${report.stateDirs ? ', state dirs' : ''}; ` +
          `${report.faults} faults ${JSON.stringify(report.faultKinds)}; ${report.ids} ids, ${report.refusals} of ${report.requests} requests refused (lowest member availability ${(availability * 100).toFixed(2)} %); ` +
          `${report.events} events, trace ${report.traceHash.slice(0, 16)}; ${cpuMs} ms CPU`,
      );
    }
    if (report.violation !== undefined) {
      failed++;
      console.log(failure(report));
      if (values['stop-at-first']) break;
    }
  }
  const total = process.cpuUsage(started);
  if (seeds.length > 1) console.log(`${ran} seeds, ${failed} failed, ${Math.round((total.user + total.system) / 1000)} ms CPU`);
  return failed === 0 ? 0 : 1;
}

process.exitCode = await main();
