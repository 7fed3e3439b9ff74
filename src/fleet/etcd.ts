// The etcd connection and key schema of fleet mode.
//
// Keys (all under hailstone/<cluster>/):
//   claims/<nodeId>                    who holds the node id: JSON naming the instance; attached
//                                      to the holder's lease, so it disappears when the holder
//                                      stops renewing it
//   reservations/<nodeId>/<i>-<count>  the durable reservation R of worker stripe i of count,
//                                      in ms since the Unix epoch, zero-padded decimal; no
//                                      lease: it outlives every instance
//
// Requests carry a deadline and are not retried by the client library: the callers retry
// with their own backoff, and a request that hangs must not hold up a renewal forever.

import { createRequire } from 'node:module';
import type { Etcd3, IOptions } from 'etcd3';
import { InvalidArgumentError, describe } from '../errors.js';

// etcd's client (with gRPC) is loaded on the first connection, not on import: it is most
// of what hailstone would otherwise load, and programs that never reach a fleet — or that
// only parse endpoints to check them — must not pay for it.
const load = createRequire(import.meta.url);

export const DEFAULT_CLUSTER = 'default';
/** Each etcd request's deadline. */
export const ETCD_REQUEST_TIMEOUT_MS = 2000;

export interface EtcdOptions {
  /** etcd client URLs, e.g. ["http://10.0.0.1:2379"]. */
  endpoints: string[];
}

/** Checks and normalizes etcd endpoints ("http://host:port"; a bare "host:port" gets http://). */
export function parseEtcdEndpoints(endpoints: string[]): string[] {
  if (!Array.isArray(endpoints) || endpoints.length === 0) throw new InvalidArgumentError('etcd.endpoints', 'must list at least one etcd URL, e.g. http://127.0.0.1:2379');
  return endpoints.map((text) => {
    const url = /^[a-z]+:\/\//i.test(text) ? text : `http://${text}`;
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch {
      throw new InvalidArgumentError('etcd.endpoints', `${describe(text)} is not an etcd URL such as http://127.0.0.1:2379`);
    }
    if (parsed.protocol !== 'http:' || parsed.port === '') {
      throw new InvalidArgumentError('etcd.endpoints', `${describe(text)}: use http://HOST:PORT (TLS is not supported yet)`);
    }
    return `${parsed.hostname}:${parsed.port}`;
  });
}

export function checkCluster(cluster: string | undefined): string {
  const name = cluster ?? DEFAULT_CLUSTER;
  if (!/^[A-Za-z0-9._-]{1,64}$/.test(name)) throw new InvalidArgumentError('cluster', `${describe(name)} must be 1 to 64 letters, digits, '.', '_' or '-'`);
  return name;
}

export function connectEtcd(options: EtcdOptions): Etcd3 {
  const hosts = parseEtcdEndpoints(options.endpoints);
  const { Etcd3 } = load('etcd3') as typeof import('etcd3');
  const { noop } = load('cockatiel') as typeof import('cockatiel');
  const config: IOptions = {
    hosts,
    dialTimeout: ETCD_REQUEST_TIMEOUT_MS,
    // No circuit breaker or retries inside the client: after an outage the next renewal
    // must reach etcd at once, and every caller retries on its own schedule.
    faultHandling: { host: () => noop, global: noop },
    // Reconnect within a second of etcd's return (gRPC's default backoff grows to 2 minutes).
    grpcOptions: { 'grpc.initial_reconnect_backoff_ms': 100, 'grpc.max_reconnect_backoff_ms': 1000 },
    defaultCallOptions: (context) => (context.isStream ? {} : { deadline: Date.now() + ETCD_REQUEST_TIMEOUT_MS }),
  };
  return new Etcd3(config);
}

/** Whether an etcd request failed because etcd could not be reached in time (worth retrying). */
export function etcdUnreachable(error: unknown): boolean {
  const name = (error as Error)?.name ?? '';
  return /GRPC|Unavailable|Deadline|Connect|Timeout|Cancel/i.test(name) || /UNAVAILABLE|DEADLINE|ECONNREFUSED|No connection|timed out/i.test((error as Error)?.message ?? '');
}

export function claimsPrefix(cluster: string): string {
  return `hailstone/${cluster}/claims/`;
}

export function claimKey(cluster: string, nodeId: number): string {
  return `${claimsPrefix(cluster)}${nodeId}`;
}

export function reservationsPrefix(cluster: string, nodeId: number): string {
  return `hailstone/${cluster}/reservations/${nodeId}/`;
}

export function reservationKey(cluster: string, nodeId: number, worker: { index: number; count: number }): string {
  return `${reservationsPrefix(cluster, nodeId)}${worker.index}-${worker.count}`;
}

/** R as stored: fixed width, so that etcd's byte-wise order is numeric order. */
export function formatReservation(ms: number): string {
  return String(ms).padStart(16, '0');
}

export function parseReservation(text: string): number | undefined {
  if (!/^\d{1,16}$/.test(text)) return undefined;
  const value = Number(text);
  return Number.isSafeInteger(value) ? value : undefined;
}

/** What a claim key holds: enough to find the instance and its UDP address. */
export interface ClaimInfo {
  instance: string;
  host: string;
  /** "address:port" of the UDP service, once bound. */
  udp: string;
  pid: number;
  version: string;
  startedAt: string;
}
