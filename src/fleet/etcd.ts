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
// Requests carry a deadline per attempt. With one endpoint they are not retried by the
// client library: the callers retry with their own backoff. With several (the members of a
// cluster), a request that fails or stalls on one member is sent at once to the next, and a
// member that failed is passed over until a probe finds it healthy again — so one dead or
// hung member out of three costs a request at most one attempt's deadline, not an outage.

import { createRequire } from 'node:module';
import type { ComparatorBuilder, Etcd3, IKeyValue, IOptions, IRequestOp, ITxnResponse } from 'etcd3';
import { InvalidArgumentError, describe } from '../errors.js';
import { DEFAULT_CLUSTER } from './defaults.js';
import { type EtcdTlsMaterial, type EtcdTlsOptions, tlsGiven } from './etcd-tls.js';
import { RotatingTlsFiles, rotatingCredentials } from './etcd-credentials.js';

// etcd's client (with gRPC) is loaded on the first connection, not on import: it is most
// of what hailstone would otherwise load, and programs that never reach a fleet — or that
// only parse endpoints to check them — must not pay for it.
const load = createRequire(import.meta.url);

/** Each etcd request's deadline with one endpoint (nowhere else to go: wait longer). */
export const ETCD_REQUEST_TIMEOUT_MS = 2000;
/**
 * Each attempt's deadline with several endpoints: a healthy member answers a transaction in
 * milliseconds, so an attempt this slow means a stalled member — try the next one.
 */
export const ETCD_ATTEMPT_TIMEOUT_MS = 750;
/** A member that failed is passed over for this long at first, doubling up to the max while it keeps failing. */
const MEMBER_PROBE_AFTER_MS = 250;
const MEMBER_PROBE_MAX_MS = 2000;

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

/** Whether each member was answering at its last request (true) or is being passed over (false). */
export type EndpointHealth = Map<string, boolean>;

/** An etcd client and what it knows of its members' health. */
export interface EtcdConnection {
  etcd: Etcd3;
  endpoints: string[];
  health: EndpointHealth;
}

export function connectEtcd(options: EtcdOptions): Etcd3 {
  return openEtcd(options).etcd;
}

/**
 * An etcd client over every endpoint given. `onHealth` is told when a member starts being
 * passed over (it failed or stalled) and when a probe finds it answering again.
 */
export function openEtcd(
  options: EtcdOptions,
  onHealth?: (endpoint: string, up: boolean) => void,
  /** Told when the TLS files changed and were read again (or did not load). */
  onTlsFiles?: (event: { ok: boolean; message: string }) => void,
): EtcdConnection {
  const { hosts, secure } = etcdTargets(options.endpoints, tlsGiven(options));
  // Over TLS: the files as they are now, and followed from here on.
  const files = secure ? new RotatingTlsFiles(options, onTlsFiles) : undefined;
  const auth = etcdAuth(options);
  const { Etcd3, isRecoverableError } = load('etcd3') as typeof import('etcd3');
  const { noop, circuitBreaker, retry, handleWhen, ConsecutiveBreaker, ExponentialBackoff, ConstantBackoff } = load('cockatiel') as typeof import('cockatiel');
  const health: EndpointHealth = new Map(hosts.map((h) => [h, true]));
  const attemptMs = attemptTimeoutMs(hosts);
  const several = hosts.length > 1;
  const config: IOptions = {
    hosts,
    dialTimeout: attemptMs,
    faultHandling: several
      ? {
          // One failure (unreachable, stalled past the attempt deadline) and the member is
          // passed over; the first request after the pause probes it.
          host: (host) => {
            const breaker = circuitBreaker(handleWhen(isRecoverableError), {
              halfOpenAfter: new ExponentialBackoff({ initialDelay: MEMBER_PROBE_AFTER_MS, maxDelay: MEMBER_PROBE_MAX_MS }),
              breaker: new ConsecutiveBreaker(1),
            });
            // Told once per change: a member that keeps failing its probes is not news.
            const mark = (up: boolean) => {
              if (health.get(host) === up) return;
              health.set(host, up);
              onHealth?.(host, up);
            };
            breaker.onBreak(() => mark(false));
            breaker.onReset(() => mark(true));
            return breaker;
          },
          // A failed attempt goes at once to the next member (the pool hands each retry the
          // next host). Writes are retried too: EtcdStore resolves a write whose first
          // attempt may have landed by reading it back.
          global: retry(handleWhen(isRecoverableError), { maxAttempts: hosts.length - 1, backoff: new ConstantBackoff(0) }),
        }
      : // One endpoint: no circuit breaker or retries inside the client — after an outage the
        // next renewal must reach etcd at once, and every caller retries on its own schedule.
        { host: () => noop, global: noop },
    // Reconnect within a second of etcd's return (gRPC's default backoff grows to 2 minutes).
    grpcOptions: { 'grpc.initial_reconnect_backoff_ms': 100, 'grpc.max_reconnect_backoff_ms': 1000 },
    defaultCallOptions: (context) => (context.isStream ? {} : { deadline: Date.now() + attemptMs }),
    // Over TLS: the CA given (else the system's) verifies etcd; the client certificate, if any, is presented.
    ...(files === undefined ? {} : { credentials: credentialsOf(files.current) }),
    ...(auth === undefined ? {} : { auth }),
  };
  const etcd = new Etcd3(config);
  if (files !== undefined) followTlsFiles(etcd, files, options.cert !== undefined);
  return { etcd, endpoints: hosts, health };
}

/**
 * Over TLS, every new connection (to each member, and for each login) takes the
 * certificates as the files now hold them: etcd3 builds its credentials once, so they are
 * replaced with ones that follow the files. If etcd3's insides ever differ, the fixed
 * credentials it was given stay in use (the tests of rotation say so).
 */
function followTlsFiles(etcd: Etcd3, files: RotatingTlsFiles, hasIdentity: boolean): void {
  if (!files.watchesFiles) return;
  const pool = (etcd as unknown as { pool?: { hosts?: { channelCredentials?: unknown }[]; authenticator?: { credentials?: unknown } } }).pool;
  if (pool?.hosts === undefined || pool.authenticator === undefined) return;
  const credentials = rotatingCredentials(files, hasIdentity);
  for (const host of pool.hosts) host.channelCredentials = credentials;
  pool.authenticator.credentials = credentials;
  files.follow();
  const close = etcd.close.bind(etcd);
  etcd.close = () => {
    files.close();
    close();
  };
}

/** etcd3's TLS credentials: no CA given means the system's (gRPC takes null for that). */
function credentialsOf(tls: EtcdTlsMaterial): NonNullable<IOptions['credentials']> {
  return {
    rootCertificate: tls.ca ?? (null as unknown as Buffer),
    ...(tls.cert === undefined ? {} : { certChain: tls.cert, privateKey: tls.key! }),
  };
}

/** The user and password, checked: both or neither. */
function etcdAuth(options: EtcdOptions): { username: string; password: string } | undefined {
  const { username, password } = options;
  if (username === undefined && password === undefined) return undefined;
  if (typeof username !== 'string' || username === '') throw new InvalidArgumentError('etcd.username', 'a password was given without a user name: give the etcd user too');
  if (typeof password !== 'string') throw new InvalidArgumentError('etcd.password', `the etcd user ${describe(username)} needs its password`);
  return { username, password };
}

/**
 * Whether an etcd request failed because etcd could not be reached in time (worth retrying):
 * the client's own recoverable errors (unavailable, deadline exceeded, cancelled…), every
 * member passed over, or — for errors raised before the client could type them — the
 * connection failures gRPC reports in its message.
 */
export function etcdUnreachable(error: unknown): boolean {
  if (!(error instanceof Error)) return false;
  const etcd3 = load('etcd3') as typeof import('etcd3');
  const cockatiel = load('cockatiel') as typeof import('cockatiel');
  if (etcd3.isRecoverableError(error) || cockatiel.isBrokenCircuitError(error)) return true;
  if (error instanceof etcd3.EtcdError || error instanceof etcd3.EtcdLeaseInvalidError || error instanceof etcd3.EtcdPermissionDeniedError) return false;
  return /\b(UNAVAILABLE|DEADLINE_EXCEEDED)\b|ECONNREFUSED|ECONNRESET|No connection established|Failed to connect/.test(error.message);
}

/** An etcd error's message for a one-line report: its first line, without gRPC's empty "Resolution note". */
export function etcdMessage(error: unknown): string {
  const text = error instanceof Error ? error.message : String(error);
  return text.split('\n')[0]!.replace(/\.?\s*Resolution note:\s*$/, '');
}

/** Whether etcd says the lease is gone (revoked, or expired): keeping it alive cannot help. */
export function leaseGone(error: unknown): boolean {
  const etcd3 = load('etcd3') as typeof import('etcd3');
  return error instanceof etcd3.EtcdLeaseInvalidError;
}

/**
 * Whether an etcd request failed in a way that asking again may cure: unreachable, or an
 * error etcd itself answered with (a leader change, too many requests, a request that timed
 * out inside etcd). A refusal (TLS, password, permission) is told apart by the caller first.
 */
export function etcdFailed(error: unknown): boolean {
  const etcd3 = load('etcd3') as typeof import('etcd3');
  return etcdUnreachable(error) || error instanceof etcd3.EtcdError || error instanceof etcd3.EtcdLeaseInvalidError;
}

/** A range of every key under `prefix`, with values: for a transaction's branch. */
export function prefixRange(prefix: string): IRequestOp {
  const { Range } = load('etcd3') as typeof import('etcd3');
  const range = Range.prefix(prefix);
  return { request_range: { key: range.start, range_end: range.end } };
}

/** The keys and values a transaction's n-th operation read. */
export function rangeOf(result: ITxnResponse, n: number): IKeyValue[] {
  return result.responses[n]?.response_range?.kvs ?? [];
}

/**
 * How long a lease has left at most, ms (etcd counts whole seconds: a lease with TTL n left
 * ends within n + 1 s), or undefined when it is gone.
 */
export async function leaseLeftMs(etcd: Etcd3, leaseId: string): Promise<number | undefined> {
  const res = await etcd.leaseClient.leaseTimeToLive({ ID: leaseId });
  const ttl = Number(res.TTL);
  return ttl < 0 ? undefined : (ttl + 1) * 1000;
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
export function ifOwner(etcd: Etcd3, claim: ClaimIdentity): ComparatorBuilder {
  return etcd.if(claim.key, 'Create', '==', claim.createRevision);
}

/** The same compare on a linearizable read: whether this claim still holds the key. */
export async function isOwner(etcd: Etcd3, claim: ClaimIdentity): Promise<boolean> {
  const kv = await etcd.get(claim.key).exec();
  return kv.kvs[0]?.create_revision === claim.createRevision;
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
  /** "address:port" of the UDP service, once bound. */
  udp: string;
  pid: number;
  version: string;
  startedAt: string;
  /** Where /proc tells it (process-identity.ts): the boot, pid namespace and process start time. */
  boot?: string;
  pidns?: string;
  procStart?: string;
}
