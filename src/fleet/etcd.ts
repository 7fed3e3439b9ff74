// The key schema of fleet mode, and the etcd endpoints and options it is given. Nothing here
// talks to etcd: the etcd3 adapter (etcd-adapter.ts) does, behind the coordinator port
// (coordinator.ts).
//
// Keys (all under hailstone/<cluster>/):
//   claims/<nodeId>                    who holds the node id: JSON naming the instance; attached
//                                      to the holder's lease, so it disappears when the holder
//                                      stops renewing it
//   reservations/<nodeId>/<i>-<count>  the durable reservation R of worker stripe i of count,
//                                      in ms since the Unix epoch, zero-padded decimal; no
//                                      lease: it outlives every instance

import { InvalidArgumentError, describe } from '../errors.js';
import type { Compare, Coordinator } from './coordinator.js';
import { DEFAULT_CLUSTER } from './defaults.js';
import type { EtcdTlsOptions } from './etcd-tls.js';

/** Each etcd request's deadline with one endpoint (nowhere else to go: wait longer). */
export const ETCD_REQUEST_TIMEOUT_MS = 2000;
/**
 * Each attempt's deadline with several endpoints: a healthy member answers a transaction in
 * milliseconds, so an attempt this slow means a stalled member — try the next one.
 */
export const ETCD_ATTEMPT_TIMEOUT_MS = 750;

export interface EtcdOptions extends EtcdTlsOptions {
  /**
   * etcd client URLs, e.g. ["http://10.0.0.1:2379"] or ["https://etcd-0.example:2379"]. A bare
   * "host:port" is https:// when TLS material is given, else http://.
   */
  endpoints: string[];
  /** etcd authentication (RBAC): the user, with `password`. */
  username?: string;
  password?: string;
}

/** Where etcd is and how to reach it: "host:port" of each member, and whether over TLS. */
export interface EtcdTargets {
  hosts: string[];
  secure: boolean;
}

/** Checks and normalizes etcd endpoints ("http://host:port"; a bare "host:port" gets http://, or https:// when `tls`). */
export function parseEtcdEndpoints(endpoints: string[], tls = false): string[] {
  return etcdTargets(endpoints, tls).hosts;
}

/** Checks etcd endpoints: all http:// or all https://, each with a port. */
export function etcdTargets(endpoints: string[], tls = false): EtcdTargets {
  if (!Array.isArray(endpoints) || endpoints.length === 0) throw new InvalidArgumentError('etcd.endpoints', 'must list at least one etcd URL, e.g. http://127.0.0.1:2379');
  const parsed = endpoints.map((text) => {
    const url = /^[a-z]+:\/\//i.test(text) ? text : `${tls ? 'https' : 'http'}://${text}`;
    let u: URL;
    try {
      u = new URL(url);
    } catch {
      throw new InvalidArgumentError('etcd.endpoints', `${describe(text)} is not an etcd URL such as http://127.0.0.1:2379`);
    }
    if ((u.protocol !== 'http:' && u.protocol !== 'https:') || u.port === '') {
      throw new InvalidArgumentError('etcd.endpoints', `${describe(text)}: use http://HOST:PORT, or https://HOST:PORT for TLS`);
    }
    return { host: `${u.hostname}:${u.port}`, secure: u.protocol === 'https:' };
  });
  const secure = parsed[0]!.secure;
  if (parsed.some((p) => p.secure !== secure)) {
    throw new InvalidArgumentError('etcd.endpoints', 'mixes http:// and https:// endpoints: the members of one etcd cluster are reached one way');
  }
  if (!secure && tls) {
    throw new InvalidArgumentError('etcd.endpoints', `${describe(endpoints[0])} is http:// but a CA or client certificate was given: use https:// to reach etcd over TLS`);
  }
  return { hosts: parsed.map((p) => p.host), secure };
}

export function checkCluster(cluster: string | undefined): string {
  const name = cluster ?? DEFAULT_CLUSTER;
  if (!/^[A-Za-z0-9._-]{1,64}$/.test(name)) throw new InvalidArgumentError('cluster', `${describe(name)} must be 1 to 64 letters, digits, '.', '_' or '-'`);
  return name;
}

/** The per-attempt deadline for a client of these endpoints. */
export function attemptTimeoutMs(endpoints: string[]): number {
  return endpoints.length > 1 ? ETCD_ATTEMPT_TIMEOUT_MS : ETCD_REQUEST_TIMEOUT_MS;
}

/** Every key of a cluster: the prefix a least-privilege role is granted. */
export function clusterRoot(cluster: string): string {
  return `hailstone/${cluster}/`;
}

export function claimsPrefix(cluster: string): string {
  return `${clusterRoot(cluster)}claims/`;
}

/** A claim as every write under it names it: the key, and the create revision it had when claimed. */
export interface ClaimIdentity {
  key: string;
  createRevision: string;
}

/**
 * The fencing compare: the claim key still exists with this claim's create revision — not
 * gone, and not a later claim of the same id by someone else. Every write under a claim is
 * a transaction that starts with it.
 */
export function ifOwner(claim: ClaimIdentity): Compare {
  return { key: claim.key, target: 'create', equals: claim.createRevision };
}

/** The same compare on a linearizable read: whether this claim still holds the key. */
export async function isOwner(coordinator: Coordinator, claim: ClaimIdentity): Promise<boolean> {
  const kv = await coordinator.get(claim.key);
  return kv?.createRevision === claim.createRevision;
}

export function claimKey(cluster: string, nodeId: number): string {
  return `${claimsPrefix(cluster)}${nodeId}`;
}

/** Every node id's reservations. */
export function reservationsRoot(cluster: string): string {
  return `${clusterRoot(cluster)}reservations/`;
}

export function reservationsPrefix(cluster: string, nodeId: number): string {
  return `${reservationsRoot(cluster)}${nodeId}/`;
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
  /** "address:port" of the UDP service, once bound; "" for a server that serves none (--no-udp). */
  udp: string;
  pid: number;
  version: string;
  startedAt: string;
  /** Where /proc tells it (process-identity.ts): the boot, pid namespace and process start time. */
  boot?: string;
  pidns?: string;
  procStart?: string;
}
