// What the primary of `hailstone serve --workers N` and its workers say to each other: the
// environment a worker is forked with, and the messages over the IPC channel both ways.
// One module for both sides, so a field one side sends is the field the other reads. The
// primary stops a worker with SIGTERM, not a message.

import type { ClaimRef } from '../fleet/etcd-store.js';
import type { SentFailure } from '../fleet/node-reservation.js';
import type { StoredFloor } from '../node/store.js';
import type { WorkerSnapshot } from '../server/health.js';
import type { TransportName } from '../server/transport.js';
import type { Failure } from './failure.js';

/** A claim as it crosses to another process: its `lose` callback stays behind. */
export type SentClaim = Omit<ClaimRef, 'lose'>;

export function sentClaim(claim: ClaimRef): SentClaim {
  return { nodeId: claim.nodeId, key: claim.key, createRevision: claim.createRevision };
}

/** From a worker to the primary. */
export type FromWorker =
  | { type: 'listening'; index: number; host: string; port: number; transport: string }
  /** With --http: its HTTP server listens (on the port all workers share through the primary). */
  | { type: 'http-listening'; index: number; url: string; port: number }
  /** It failed; it exits 1 next. */
  | { type: 'failed'; index: number; failure: Failure }
  /** The answer to the primary's snapshot request `id`. */
  | { type: 'snapshot'; id: number; snapshot: WorkerSnapshot | undefined }
  /** Fleet mode: a reservation write found the claim with this create revision gone. */
  | { type: 'claim-lost'; reason: string; createRevision: string }
  /**
   * Fleet mode: the node's reservation under the claim with this create revision — the
   * floor to start from (no `until`), or an R ≥ `until` acknowledged by etcd. Answered by id.
   */
  | { type: 'reservation'; id: number; createRevision: string; until?: number };

/** From the primary to a worker. */
export type ToWorker =
  | { type: 'snapshot'; id: number }
  /** Fleet mode: the claim is lost; stop issuing now. */
  | { type: 'fence'; reason: string }
  /** Fleet mode: the primary claimed again; serve under this claim. */
  | { type: 'claim'; claim: SentClaim }
  /** Fleet mode: the answer to the worker's reservation request `id`: the floor asked for, done, or why not. */
  | { type: 'reservation'; id: number; floor?: StoredFloor; reserved?: number; failure?: SentFailure };

/** What the primary decided for all of its workers, and which worker this one is. */
export interface WorkerEnv {
  index: number;
  /** Decided (and any fallback logged) once, by the primary. */
  transport: TransportName;
  /** Resolved, and the port reserved, by the primary. */
  host: string;
  port: number;
  /** Fleet mode: the primary's claim, which the worker writes under. */
  claim: SentClaim | undefined;
}

/** The environment variables of a worker to fork. */
export function workerEnv(env: WorkerEnv): Record<string, string> {
  return {
    ...(env.claim === undefined ? {} : { HAILSTONE_FLEET_CLAIM: JSON.stringify(sentClaim(env.claim)) }),
    HAILSTONE_WORKER_INDEX: String(env.index),
    HAILSTONE_WORKER_TRANSPORT: env.transport,
    HAILSTONE_WORKER_HOST: env.host,
    HAILSTONE_WORKER_PORT: String(env.port),
  };
}

/** Reads what workerEnv wrote for one of `workers`; anything else is a bug of the primary, and throws. */
export function readWorkerEnv(workers: number, vars: NodeJS.ProcessEnv = process.env): WorkerEnv {
  const integer = (name: string, max: number): number => {
    const value = /^\d{1,15}$/.test(vars[name] ?? '') ? Number(vars[name]) : NaN;
    if (!(value <= max)) throw new Error(`${name} must be an integer from 0 to ${max}, got ${JSON.stringify(vars[name])}`);
    return value;
  };
  const { HAILSTONE_WORKER_TRANSPORT: transport, HAILSTONE_WORKER_HOST: host, HAILSTONE_FLEET_CLAIM: claim } = vars;
  if (transport !== 'native' && transport !== 'dgram') throw new Error(`HAILSTONE_WORKER_TRANSPORT must be native or dgram, got ${JSON.stringify(transport)}`);
  if (host === undefined || host === '') throw new Error('HAILSTONE_WORKER_HOST must name the address to bind');
  return { index: integer('HAILSTONE_WORKER_INDEX', workers - 1), transport, host, port: integer('HAILSTONE_WORKER_PORT', 65535), claim: claim === undefined ? undefined : parseClaim(claim) };
}

function parseClaim(text: string): SentClaim {
  let value: Partial<Record<keyof SentClaim, unknown>> | null = null;
  try {
    value = JSON.parse(text) as typeof value;
  } catch {
    // Reported below.
  }
  const { nodeId, key, createRevision } = value ?? ({} as NonNullable<typeof value>);
  if (!Number.isSafeInteger(nodeId) || (nodeId as number) < 0 || typeof key !== 'string' || typeof createRevision !== 'string') {
    throw new Error(`HAILSTONE_FLEET_CLAIM must be {"nodeId":N,"key":"…","createRevision":"…"}, got ${text}`);
  }
  return { nodeId: nodeId as number, key, createRevision };
}
