// npm run bench:fleet-scale — a whole fleet starting at once against a real etcd on this
// machine: N claimants (64, 256, 1024) against a single etcd and a 3-member cluster, each with
// fleet mode's own claim, lease and node reservation code (bench/fleet-scale-run.ts). Reports
// how long until every claimant holds a node id, etcd requests per claimant, then the steady
// state while all N renew (etcd requests/s, per node, etcd's own p99 latency), one row with
// 16 worker stripes per node, and a power loss of the whole largest fleet followed by a new
// one (each node id's new ids above its old ones).
//
//   HAILSTONE_BENCH_FLEET_SIZES=64,256   the fleet sizes (default 64,256,1024)
//   HAILSTONE_BENCH_FLEET_ETCD=single    which etcds (default single,3 members)
//   HAILSTONE_BENCH_OUTPUT=path          where to write the results (default bench/results/fleet-scale.json)

import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT } from './harness.js';
import { type FleetScaleResult, runFleetScale } from './fleet-scale-run.js';
import { command, describeMachine, machine } from './machine.js';
import type { FleetScaleResults, FleetScaleRow } from './results.js';
import { EtcdCluster } from '../test/support/etcd-cluster.js';
import { TestEtcd } from '../test/support/etcd.js';
import { killAllChildren } from '../test/support/child.js';

// HAILSTONE_BENCH_QUICK=1 (the test suite's smoke run): 8 claimants, a short steady state.
const quick = process.env.HAILSTONE_BENCH_QUICK === '1';
const sizes = (process.env.HAILSTONE_BENCH_FLEET_SIZES ?? (quick ? '8' : '64,256,1024')).split(',').map(Number);
const STRIPED: [number, number] = quick ? [8, 4] : [64, 16];
const output = process.env.HAILSTONE_BENCH_OUTPUT ?? join(ROOT, 'bench/results/fleet-scale.json');
const LEASE_TTL_S = 10;
const logger = { info: () => undefined, warn: () => undefined, error: () => undefined, debug: () => undefined };

const quantile = (values: number[], q: number): number => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted.length === 0 ? NaN : sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)]!;
};

function row(etcd: string, claimants: number, stripes: number, result: FleetScaleResult): FleetScaleRow {
  const { start, steady, restart } = result;
  return {
    etcd,
    claimants,
    stripes,
    claimP50Ms: quantile(start.claimMs, 0.5),
    claimP99Ms: quantile(start.claimMs, 0.99),
    claimMaxMs: Math.max(...start.claimMs),
    claimRequestsPerClaimant: start.claimRequestsPerClaimant,
    startRequestsPerClaimant: start.startRequestsPerClaimant,
    failures: start.failures,
    reclaims: start.reclaims,
    distinctNodeIds: start.distinctNodeIds,
    ...(steady === undefined
      ? {}
      : { steadyRequestsPerSec: steady.requestsPerSec, steadyPerNodePerSec: steady.perNodePerSec, steadyP99Ms: steady.p99Ms, reservationWritesPerSec: steady.writesPerSec }),
    ...(restart === undefined
      ? {}
      : {
          restart: {
            allClaimedAfterMs: restart.allClaimedAfterMs,
            requestsPerClaimant: restart.startRequestsPerClaimant,
            nodeIdsAbove: restart.nodeIdsAbove,
            fencedBefore: restart.fencedBefore,
            fencedAfter: restart.fencedAfter,
            idsChecked: restart.idsChecked,
            violations: restart.violations,
            failures: restart.failures,
          },
        }),
  };
}

async function main(): Promise<void> {
  const rows: FleetScaleRow[] = [];
  const largest = Math.max(...sizes);
  const kinds: [string, () => Promise<{ endpoints: string[]; metrics: string[]; stop: () => Promise<void> }>][] = [
    [
      'single',
      async () => {
        const etcd = await TestEtcd.start({ extraArgs: ['--metrics', 'extensive'] });
        return { endpoints: [etcd.endpoint], metrics: [`${etcd.endpoint}/metrics`], stop: () => etcd.stop() };
      },
    ],
    [
      '3 members',
      async () => {
        const cluster = await EtcdCluster.start(['--metrics', 'extensive']);
        const endpoints = cluster.members.map((m) => m.endpoint);
        return { endpoints, metrics: endpoints.map((e) => `${e}/metrics`), stop: () => cluster.stop() };
      },
    ],
  ];
  const wanted = (process.env.HAILSTONE_BENCH_FLEET_ETCD ?? 'single,3 members').split(',');
  for (const [kind, startEtcd] of kinds.filter(([k]) => wanted.includes(k))) {
    const etcd = await startEtcd();
    try {
      const runs: [number, number, boolean][] = [...sizes.map((n): [number, number, boolean] => [n, 1, kind === 'single' && n === largest]), [...STRIPED, false]];
      for (const [claimants, stripes, restart] of runs) {
        console.log(`== ${kind} etcd: ${claimants} claimants × ${stripes} stripe(s)${restart ? ', then a power loss and a new fleet' : ''}`);
        const result = await runFleetScale({
          endpoints: etcd.endpoints,
          metrics: etcd.metrics,
          cluster: `scale-${claimants}-${stripes}-${Date.now()}`,
          claimants,
          stripes,
          connections: 8,
          leaseTtlS: LEASE_TTL_S,
          steadyMs: quick ? 2000 : 10_000,
          restart,
          logger,
        });
        const r = row(kind, claimants, stripes, result);
        console.log(JSON.stringify(r));
        rows.push(r);
      }
    } finally {
      await etcd.stop();
    }
  }
  const results: FleetScaleResults = { machine: machine(), command: command('bench:fleet-scale'), ...(quick ? { quick } : {}), leaseTtlS: LEASE_TTL_S, connections: 8, results: rows };
  writeFileSync(output, `${JSON.stringify(results, null, 2)}\n`);
  console.log(`${describeMachine(results.machine)}\nwrote ${output}`);
}

main()
  .catch((error: unknown) => {
    console.error(error);
    process.exitCode = 1;
  })
  .finally(() => killAllChildren());
