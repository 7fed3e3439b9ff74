// What each benchmark writes into bench/results/*.json. The scripts build their output with
// these types and the report reads files with them, so a field a script adds or renames
// shows up in the report's type check instead of as a silently stale table. Fields that
// result files written before them lack are optional.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { LoadCounts, OpenLoadResult } from './harness.js';
import type { Machine } from './machine.js';

/** What every results file starts with. */
export interface Provenance {
  machine: Machine;
  /** The command that wrote the file (older files lack it: the report knows each file's script). */
  command?: string;
  quick?: boolean;
}

/** bench/generator.ts, part 1: one tinybench task. */
export interface GeneratorRow {
  task: string;
  clock: 'fake' | 'real';
  /** Per id issued: a refused call costs its time but is not an id. */
  nsPerId: number;
  idsPerSec: number;
  rme: number;
  samples: number;
  /** Real clock: every call made (warmup included), the ids it issued, the calls refused. */
  calls?: number;
  issued?: number;
  refused?: number;
}

/** bench/generator.ts, part 2: real clock, as fast as possible. */
export interface CapRow {
  task: string;
  ids: number;
  seconds: number;
  idsPerSec: number;
  shareOfCap: number;
  duplicates: number;
  refusals: number;
}

export interface GeneratorResults extends Provenance {
  results: GeneratorRow[];
  realClock: CapRow[];
}

export type ServerKind = 'hailstone' | 'echo' | 'mmsg-echo';
export type HailstoneTransport = 'dgram' | 'native';

/** bench/udp.ts: one server under one load. */
export interface UdpRow {
  server: ServerKind;
  /** Which load generator produced the row. */
  loadGenerator: 'C' | 'node';
  /** Closed loop with the C generator: duplicates among every id received, and how many ids it checked. */
  duplicates?: number;
  idsChecked?: number;
  invalidReplies?: number;
  /** C generator: UNAVAILABLE replies in the window (the slot then waits for its retry-after). */
  unavailableReplies?: number;
  /** hailstone in fleet mode (node id and reservations in etcd). */
  fleet?: boolean;
  /** Fleet rows: etcd transactions per second during the measured window (reservation writes). */
  etcdTxnsPerSec?: number;
  /** hailstone's transport; the dgram echo uses dgram, the C echo recvmmsg/sendmmsg ('native'). */
  transport: HailstoneTransport;
  mode: string;
  workers: number;
  requestsPerSec: number;
  idsPerSec: number;
  lossPercent: number;
  p50us: number;
  p99us: number;
  p999us: number;
  serverCpuUsPerRequest: number;
  rssStartMiB: number;
  rssEndMiB: number;
  replies: number;
}

export interface UdpResults extends Provenance {
  pinned?: boolean;
  durationMs: number;
  results: UdpRow[];
}

/** bench/client.ts: one way of asking a server for ids. */
export interface ClientRow {
  mode: string;
  ids: number;
  seconds: number;
  idsPerSec: number;
  clientCpuNsPerId: number;
  /** The server's CPU per id in the same window (its process, read from /proc); absent in older runs. */
  serverCpuNsPerId?: number;
  requests: number;
}

export interface ClientResults extends Provenance {
  seconds: number;
  results: ClientRow[];
}

/** bench/import.ts: one entry point imported by fresh processes. */
export interface ImportRow {
  task: string;
  specifier: string;
  medianMs: number;
  p90Ms: number;
  cjsModules: number;
  etcdModules: number;
}

export interface ImportResults extends Provenance {
  runs: number;
  results: ImportRow[];
}

/** The server's own view during a steady-load condition, from its /metrics. */
export interface ServerView {
  refusals: Record<string, number>;
  loopLagP99Ms: number;
  loopLagMaxMs: number;
  renewalMeanMs: number;
  renewals: number;
}

/** bench/steady.ts: one condition. */
export interface SteadyRow extends LoadCounts {
  condition: string;
  server: ServerView;
}

export interface SteadyResults extends Provenance {
  seconds: number;
  results: SteadyRow[];
}

/** bench/latency.ts: one server at one rate. */
export interface LatencyRow extends OpenLoadResult {
  server: string;
}

export interface LatencyResults extends Provenance {
  seconds: number;
  results: LatencyRow[];
}

/** bench/http.ts: one server under wrk (keep-alive, one thread). */
export interface HttpRow {
  /** 'hailstone', 'node:http' (the bare ceiling) or 'Flask' (the seed under gunicorn). */
  server: string;
  route: string;
  connections: number;
  requests: number;
  requestsPerSec: number;
  /** hailstone: ids sent, from its /metrics; the others: one per request. */
  idsPerSec: number;
  serverCpuUsPerRequest: number;
  p50us: number;
  p99us: number;
  /** Answers other than 2xx/3xx, and connect/read/write/timeout errors: 0 in a valid run. */
  non2xx: number;
  socketErrors: number;
  /** Rows measured in several alternating rounds: each round's requests/s (the row is the best). */
  roundsPerSec?: number[];
}

export interface HttpResults extends Provenance {
  seconds: number;
  connections: number;
  /** wrk's version line. */
  wrk: string;
  results: HttpRow[];
}

/** bench/fleet-scale.ts: N claimants starting at once against one kind of etcd. */
export interface FleetScaleRow {
  /** 'single' or '3 members'. */
  etcd: string;
  claimants: number;
  /** Worker stripes per node. */
  stripes: number;
  claimP50Ms: number;
  claimP99Ms: number;
  claimMaxMs: number;
  /** etcd requests per claimant (counted by etcd): claiming alone, and claiming plus opening the node. */
  claimRequestsPerClaimant: number;
  startRequestsPerClaimant: number;
  /** Claimants that failed, by code: none in a valid run. */
  failures: Record<string, number>;
  /** Claims lost before their node opened (a lease that ran out while the fleet still claimed) and claimed again, as a server does. */
  reclaims?: number;
  distinctNodeIds: number;
  /** While every node renews: etcd requests/s in all and per node, etcd's p99 of unary calls, reservation writes/s. */
  steadyRequestsPerSec?: number;
  steadyPerNodePerSec?: number;
  steadyP99Ms?: number;
  reservationWritesPerSec?: number;
  /** A power loss of the whole fleet, then as many new claimants. */
  restart?: {
    allClaimedAfterMs: number;
    requestsPerClaimant: number;
    /** Node ids whose new holder started at or above the stored R and issued only above the old ids. */
    nodeIdsAbove: number;
    /** Nodes fenced (their claim lost on an overloaded machine) before they issued, before and after the loss. */
    fencedBefore?: number;
    fencedAfter?: number;
    idsChecked: number;
    violations: string[];
    failures: Record<string, number>;
  };
}

export interface FleetScaleResults extends Provenance {
  leaseTtlS: number;
  /** etcd connections the claimants shared. */
  connections: number;
  results: FleetScaleRow[];
}

/** test/sim/scale.ts: one simulated fleet starting at once and running steady. */
export interface FleetSimRow {
  members: number;
  stripes: number;
  leaseTtlS: number;
  maxLeadMs: number;
  /** Virtual ms from the start until every member served an id. */
  allServingMs: number;
  coldStartRequestsPerMember: number;
  steadyRequestsPerSec: number;
  steadyRequestsPerSecPerMember: number;
  requestKinds: Record<string, number>;
  ids: number;
  cpuSeconds: number;
}

export interface FleetSimResults extends Provenance {
  rows: FleetSimRow[];
  /** npm test's seed band: what one seed costs. */
  band: { seeds: number; members: number; minutes: number; fewestFaults: number; ids: number; cpuSecondsPerSeed: number };
}

/** Every results file the report reads, by name. */
export interface Results {
  'generator.json': GeneratorResults;
  'udp.json': UdpResults;
  'udp-pinned.json': UdpResults;
  'udp-soak.json': UdpResults;
  'client.json': ClientResults;
  'import.json': ImportResults;
  'steady.json': SteadyResults;
  'latency.json': LatencyResults;
  'http.json': HttpResults;
  'fleet-scale.json': FleetScaleResults;
  'fleet-sim.json': FleetSimResults;
}

export type ResultsFile = keyof Results;

export const RESULTS_FILES: ResultsFile[] = ['generator.json', 'udp.json', 'udp-pinned.json', 'udp-soak.json', 'client.json', 'import.json', 'steady.json', 'latency.json', 'http.json', 'fleet-scale.json', 'fleet-sim.json'];

/** Reads every results file from `dir`; a missing one is an error, not an empty table. */
export function readResults(dir: string): Results {
  const read = (file: ResultsFile): unknown => JSON.parse(readFileSync(join(dir, file), 'utf8'));
  return Object.fromEntries(RESULTS_FILES.map((file) => [file, read(file)])) as unknown as Results;
}
