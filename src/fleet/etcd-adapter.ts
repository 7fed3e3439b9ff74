// The etcd3 adapter: the coordinator port (coordinator.ts) over etcd's gRPC client, and the
// only module of hailstone that loads etcd3. Every etcd3 error becomes a CoordinatorError
// whose kind says what a caller can do (unreachable, failed, lease gone); anything else is a
// bug and passes through as it is.
//
// Requests carry a deadline per attempt. With one endpoint they are not retried by the
// client library: the callers retry with their own backoff. With several (the members of a
// cluster), a request that fails or stalls on one member is sent at once to the next, and a
// member that failed is passed over until a probe finds it healthy again — so one dead or
// hung member out of three costs a request at most one attempt's deadline, not an outage.

import { createRequire } from 'node:module';
import type { Etcd3, IKeyValue, IOptions, IRequestOp, Lease, Watcher } from 'etcd3';
import { InvalidArgumentError, describe } from '../errors.js';
import { type Compare, type Coordinator, CoordinatorError, type KeyValue, type LeaseTtl, type Op, type TxnResult, type Watch, type WatchEvent } from './coordinator.js';
import { ETCD_REQUEST_TIMEOUT_MS, type EtcdOptions, attemptTimeoutMs, etcdTargets } from './etcd.js';
import { type EtcdTlsMaterial, tlsGiven } from './etcd-tls.js';
import { RotatingTlsFiles, rotatingCredentials } from './etcd-credentials.js';

// etcd's client (with gRPC) is loaded on the first connection, not on import: it is most
// of what hailstone would otherwise load, and programs that never reach a fleet — or that
// only parse endpoints to check them — must not pay for it.
const load = createRequire(import.meta.url);

/** A member that failed is passed over for this long at first, doubling up to the max while it keeps failing. */
const MEMBER_PROBE_AFTER_MS = 250;
const MEMBER_PROBE_MAX_MS = 2000;

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
 * Whether an etcd3 error means etcd could not be reached in time: the client's own
 * recoverable errors (unavailable, deadline exceeded, cancelled…), every member passed
 * over, or — for errors raised before the client could type them — the connection failures
 * gRPC reports in its message.
 */
function unreachableError(error: Error): boolean {
  const etcd3 = load('etcd3') as typeof import('etcd3');
  const cockatiel = load('cockatiel') as typeof import('cockatiel');
  if (etcd3.isRecoverableError(error) || cockatiel.isBrokenCircuitError(error)) return true;
  if (error instanceof etcd3.EtcdError || error instanceof etcd3.EtcdLeaseInvalidError || error instanceof etcd3.EtcdPermissionDeniedError) return false;
  return /\b(UNAVAILABLE|DEADLINE_EXCEEDED)\b|ECONNREFUSED|ECONNRESET|No connection established|Failed to connect/.test(error.message);
}

/** An etcd3 error as the port says it; anything that is not etcd's (a bug) as it is. */
export function classify(error: unknown): unknown {
  if (!(error instanceof Error) || error instanceof CoordinatorError) return error;
  const etcd3 = load('etcd3') as typeof import('etcd3');
  if (error instanceof etcd3.EtcdLeaseInvalidError) return new CoordinatorError('lease-gone', error.message, { cause: error });
  if (unreachableError(error)) return new CoordinatorError('unreachable', error.message, { cause: error });
  if (error instanceof etcd3.EtcdError) return new CoordinatorError('failed', error.message, { cause: error });
  return error;
}

async function classified<T>(request: () => Promise<T>): Promise<T> {
  try {
    return await request();
  } catch (error) {
    throw classify(error);
  }
}

function keyValueOf(kv: IKeyValue): KeyValue {
  return { key: kv.key.toString(), value: kv.value.toString(), createRevision: String(kv.create_revision), modRevision: String(kv.mod_revision), lease: String(kv.lease ?? '0') };
}

const TARGETS = { create: 'Create', mod: 'Mod', value: 'Value' } as const;

/** The coordinator port over an etcd3 client. */
export class EtcdCoordinator implements Coordinator {
  readonly describe: string;
  readonly health: ReadonlyMap<string, boolean>;
  /** Leases granted here, by id: etcd3 keeps each one's keepalive stream. */
  private readonly leases = new Map<string, Lease>();

  constructor(
    /** The client, for tests and tools that read etcd directly. */
    readonly etcd: Etcd3,
    endpoints: string[],
    health: ReadonlyMap<string, boolean> = new Map(),
  ) {
    this.describe = endpoints.join(',');
    this.health = health;
  }

  txn(compares: Compare[], then: Op[], otherwise: Op[] = []): Promise<TxnResult> {
    return classified(async () => {
      const [first, ...more] = compares;
      if (first === undefined) throw new TypeError('a transaction needs at least one compare');
      const builder = this.etcd.if(first.key, TARGETS[first.target], '==', first.equals);
      for (const c of more) builder.and(c.key, TARGETS[c.target], '==', c.equals);
      builder.then(...then.map((op) => this.requestOf(op)));
      if (otherwise.length > 0) builder.else(...otherwise.map((op) => this.requestOf(op)));
      const result = await builder.commit();
      return {
        succeeded: result.succeeded,
        revision: String(result.header.revision),
        reads: (result.succeeded ? then : otherwise).map((_, n) => (result.responses[n]?.response_range?.kvs ?? []).map(keyValueOf)),
      };
    });
  }

  get(key: string): Promise<KeyValue | undefined> {
    return classified(async () => {
      const result = await this.etcd.get(key).exec();
      const kv = result.kvs[0];
      return kv === undefined ? undefined : keyValueOf(kv);
    });
  }

  range(prefix: string, options: { keysOnly?: boolean } = {}): Promise<{ kvs: KeyValue[]; revision: string }> {
    return classified(async () => {
      const { Range } = load('etcd3') as typeof import('etcd3');
      const range = Range.prefix(prefix);
      const result = await this.etcd.kv.range({ key: range.start, range_end: range.end, keys_only: options.keysOnly === true });
      return { kvs: result.kvs.map(keyValueOf), revision: String(result.header.revision) };
    });
  }

  grantLease(ttlS: number): Promise<string> {
    return classified(async () => {
      const lease = this.etcd.lease(ttlS, { autoKeepAlive: false });
      lease.on('lost', () => undefined); // reported through the port's answers, never as an unhandled event
      try {
        const id = await lease.grant();
        this.leases.set(id, lease);
        return id;
      } catch (error) {
        lease.release();
        throw error;
      }
    });
  }

  keepAlive(leaseId: string, timeoutMs: number): Promise<number> {
    return classified(async () => {
      const lease = this.leases.get(leaseId);
      if (lease === undefined) throw new CoordinatorError('lease-gone', `lease ${leaseId} is not held by this client`);
      const res = await lease.keepaliveOnce({ deadline: Date.now() + timeoutMs });
      const ttl = Number(res.TTL);
      if (ttl <= 0) throw new CoordinatorError('lease-gone', 'etcd says the lease expired');
      return ttl;
    });
  }

  async revokeLease(leaseId: string): Promise<void> {
    const lease = this.leases.get(leaseId);
    this.leases.delete(leaseId);
    if (lease === undefined) return;
    await classified(() => lease.revoke({ deadline: Date.now() + ETCD_REQUEST_TIMEOUT_MS }));
  }

  forgetLease(leaseId: string): void {
    this.leases.get(leaseId)?.release();
    this.leases.delete(leaseId);
  }

  leaseTimeToLive(leaseId: string): Promise<LeaseTtl | undefined> {
    return classified(async () => {
      const res = await this.etcd.leaseClient.leaseTimeToLive({ ID: leaseId, keys: false });
      const left = Number(res.TTL);
      return left < 0 ? undefined : { leftS: left, grantedS: Number(res.grantedTTL), term: String(res.header.raft_term) };
    });
  }

  watch(prefix: string, fromRevision: string, onEvent: (event: WatchEvent) => void): Promise<Watch> {
    return classified(async () => {
      const watcher: Watcher = await this.etcd.watch().prefix(prefix).startRevision(fromRevision).create();
      watcher.on('put', (kv) => onEvent({ type: 'put', kv: keyValueOf(kv) }));
      watcher.on('delete', (kv) => onEvent({ type: 'delete', kv: keyValueOf(kv) }));
      watcher.on('error', () => undefined); // the watcher reconnects by itself
      return { cancel: () => watcher.cancel().catch(() => undefined) };
    });
  }

  close(): void {
    for (const lease of this.leases.values()) lease.release();
    this.leases.clear();
    this.etcd.close();
  }

  private requestOf(op: Op): IRequestOp | ReturnType<Etcd3['put']> | ReturnType<Etcd3['get']> {
    if ('put' in op) {
      const put = this.etcd.put(op.put).value(op.value);
      return op.lease === undefined ? put : put.lease(op.lease);
    }
    if ('get' in op) return this.etcd.get(op.get);
    if ('delete' in op) return this.etcd.delete().key(op.delete) as unknown as IRequestOp;
    const { Range } = load('etcd3') as typeof import('etcd3');
    const range = Range.prefix(op.range);
    return { request_range: { key: range.start, range_end: range.end, keys_only: op.keysOnly === true } };
  }
}

/** The coordinator port over etcd at these endpoints (openEtcd says how it connects). */
export function etcdCoordinator(options: EtcdOptions, onHealth?: (endpoint: string, up: boolean) => void, onTlsFiles?: (event: { ok: boolean; message: string }) => void): EtcdCoordinator {
  const { etcd, endpoints, health } = openEtcd(options, onHealth, onTlsFiles);
  return new EtcdCoordinator(etcd, endpoints, health);
}
