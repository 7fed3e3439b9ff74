// What a serving process reports (its snapshot: the server's counters, its node's status,
// fleet mode's figures) and whether the node is healthy, with the reason an operator reads
// on /healthz.

import type { FleetStats } from '../node/source.js';
import type { NodeStatus } from '../node/node.js';
import type { HttpStats } from './http-metrics.js';
import type { ServerStats } from './server.js';

/** One process's view: its server's counters and its node's status (none yet while it starts). */
export interface WorkerSnapshot {
  /** Which worker (0 with one process). */
  index: number;
  /** Its UDP server's counters; absent with --no-udp. */
  stats?: ServerStats;
  node: NodeStatus | undefined;
  /** The node id it runs, when known before the node is open (local mode, or a worker under a fleet claim). */
  nodeId?: number;
  /** While the node is opening: what it waits for, and for how long. */
  starting?: { reason: string; retryAfterMs: number | undefined };
  /** With --http and --workers: this worker's HTTP counters (the primary adds them up). */
  http?: HttpStats;
}

/** The whole node: every worker's snapshot, plus what only the primary knows. */
export interface NodeSnapshot {
  workers: WorkerSnapshot[];
  workerRestarts: number;
  /** Workers expected; a missing one makes the node unhealthy. */
  expectedWorkers: number;
  /** Fleet mode: the claim, fencing and etcd figures. */
  fleet?: FleetStats;
  /** With --http: the HTTP front end's counters. */
  http?: HttpStats;
}

export interface Health {
  healthy: boolean;
  reason: string | undefined;
  /** When waiting helps: how long until it can serve ids again, ms. */
  retryAfterMs?: number;
  /** The node id served, when known (not while a fleet server claims one). */
  nodeId?: number;
}

/** Retry-after while a fleet server waits for etcd or claims a node id. */
const COORDINATOR_RETRY_MS = 1000;

/**
 * Healthy only while every expected worker runs and can issue an id now. The reason names
 * the node id (and the worker, with several), and blames etcd ("coordinator (etcd): …")
 * when the claim is what stops the node.
 */
export function healthOf(snapshot: NodeSnapshot): Health {
  const fleet = snapshot.fleet;
  const first = snapshot.workers[0];
  const nodeId = fleet?.nodeId ?? (first === undefined ? undefined : nodeIdOf(snapshot, first));
  const answer = (h: Health, id = nodeId): Health => (id === undefined ? h : { ...h, nodeId: id });
  const ofNode = nodeId === undefined ? '' : `node ${nodeId}: `;
  // The claim comes first: without it no worker can issue, whatever each one says.
  if (fleet !== undefined && (fleet.claiming || fleet.problem !== undefined)) {
    const what = [fleet.problem, fleet.claiming ? `claiming a node id in cluster ${fleet.cluster}` : undefined].filter((p) => p !== undefined);
    return answer({ healthy: false, reason: `${ofNode}coordinator (etcd): ${what.join('; ')}`, retryAfterMs: COORDINATOR_RETRY_MS });
  }
  if (snapshot.workers.length < snapshot.expectedWorkers) {
    const running = new Set(snapshot.workers.map((w) => w.index));
    const missing = Array.from({ length: snapshot.expectedWorkers }, (_, i) => i).filter((i) => !running.has(i));
    const which = missing.length === 0 ? '' : ` (${missing.length === 1 ? 'worker' : 'workers'} ${missing.join(', ')})`;
    return answer({ healthy: false, reason: `${ofNode}${snapshot.expectedWorkers - snapshot.workers.length} of ${snapshot.expectedWorkers} workers not running${which}` });
  }
  for (const w of snapshot.workers) {
    const id = nodeIdOf(snapshot, w);
    const node = id === undefined ? 'node' : `node ${id}`;
    const where = snapshot.expectedWorkers > 1 ? `${node}, worker ${w.index} of ${snapshot.expectedWorkers}: ` : id === undefined ? '' : `${node}: `;
    if (w.node === undefined) {
      const retryAfterMs = w.starting?.retryAfterMs;
      return answer({ healthy: false, reason: `${where}starting: ${w.starting?.reason ?? 'opening the node'}`, ...(retryAfterMs === undefined ? {} : { retryAfterMs }) }, id ?? nodeId);
    }
    if (!w.node.healthy) {
      const retryAfterMs = w.node.retryAfterMs;
      // A node closes only when its server stops (or re-claims, reported above): say so.
      const why = w.node.closed && w.node.ownershipLost === undefined ? 'closed: the server is stopping' : (w.node.reason ?? 'unhealthy');
      return answer({ healthy: false, reason: `${where}${why}`, ...(retryAfterMs === undefined ? {} : { retryAfterMs }) }, id ?? nodeId);
    }
  }
  return answer({ healthy: true, reason: undefined });
}

/** The node id a worker runs: its node's, else the one it was started with, else the fleet's claim. */
export function nodeIdOf(snapshot: NodeSnapshot, w: WorkerSnapshot): number | undefined {
  return w.node?.nodeId ?? w.nodeId ?? snapshot.fleet?.nodeId;
}
