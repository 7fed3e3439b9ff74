// Claiming a node id in etcd: a key attached to a lease, created only if absent.
//
// The claim is what every reservation write compares against (see etcd-store.ts): while
// the key exists with this claim's create revision, this instance holds the node id. The
// lease decides only *when* the key goes away after the holder stops renewing it — never
// whether two instances issue the same ids.
//
// The lease is a LeaseSession (lease-session.ts), kept alive by the claimant while it waits
// and by the claim once made. The holder also stops on its own before etcd could expire the
// lease: when no keepalive has been confirmed for TTL minus a safety margin (measured on the
// monotonic clock from when it was sent), the claim is lost. A process that was paused (GC,
// SIGSTOP, a frozen VM) past that point finds out on its first timer after it resumes.

import { performance } from 'node:perf_hooks';
import type { Etcd3 } from 'etcd3';
import { HailstoneError } from '../errors.js';
import { Backoff, closing, pause } from './backoff.js';
import { FailureEpisode } from '../log-episode.js';
import type { NodeLogger } from '../logger.js';
import { DEFAULT_COORDINATOR_WAIT_MS, DEFAULT_LEASE_TTL_S } from './defaults.js';
import { LeaseGoneError, LeaseSession } from './lease-session.js';
import { type ClaimInfo, claimKey, claimsPrefix, etcdMessage, etcdUnreachable, ifOwner, isOwner } from './etcd.js';
import { describeHolder, holderInstance } from './holder.js';
import { passOverFarAhead } from './far-ahead.js';

export interface ClaimOptions {
  etcd: Etcd3;
  cluster: string;
  /** The node id wanted; undefined: the lowest free one (preferNodeId first, when free). */
  nodeId: number | undefined;
  preferNodeId?: number | undefined;
  /** The layout's largest node id. */
  maxNodeId: number;
  /** With nodeId: how long to wait for its holder to go away. Default 0. */
  claimWaitMs?: number;
  /** Lease TTL, seconds. Default 10. */
  leaseTtlS?: number;
  /** How long to keep trying while etcd cannot be reached, then COORDINATOR_UNAVAILABLE. Default 30 s. */
  coordinatorWaitMs?: number;
  info: ClaimInfo;
  logger: NodeLogger;
  /** Observes every etcd request's duration, seconds (for the latency histogram). */
  observe?: (seconds: number) => void;
  /**
   * Free claims only: ids whose stored reservation lies past this (ms on the claimant's own
   * clock: now plus its lead) are passed over — a predecessor whose clock ran fast left them,
   * and taking one would mean waiting out that skew — unless no other id is free.
   */
  reservationLimit?: () => number;
  /** The ids passed over last (kept by the claimant across its claims, to log them once). */
  passedOver?: { last?: string };
  /** Aborted when the caller no longer wants the claim: every wait ends at once with CLOSED. */
  signal?: AbortSignal;
  /** Told of each attempt that found etcd unreachable (the caller reports it, e.g. on /healthz). */
  onUnreachable?: (error: unknown) => void;
  /**
   * Why etcd refuses this claimant (TLS, password, permission), if it does. With a bounded
   * coordinatorWaitMs (a start) a refusal ends the claim at once: COORDINATOR_REFUSED.
   */
  refusal?: (error: unknown) => string | undefined;
}


/** A node id held through an etcd lease. */
export class Claim {
  readonly nodeId: number;
  readonly key: string;
  /** The claim key's create revision: the compare every reservation write makes. */
  readonly createRevision: string;
  private readonly etcd: Etcd3;
  private readonly session: LeaseSession;
  private readonly logger: NodeLogger;
  private lostReason: string | undefined;
  private readonly lostHandlers: ((reason: string) => void)[] = [];
  private keepaliveTimer: NodeJS.Timeout | undefined;
  private fenceTimer: NodeJS.Timeout | undefined;
  private released = false;
  /** Failed keepalives are logged once per run of failures. */
  private readonly keepaliveEpisode: FailureEpisode;
  /** One keepalive (with its retries through other members) at a time. */
  private keepaliveInFlight = false;
  /** Keepalives confirmed, and failed. */
  renewals = 0;
  renewalFailures = 0;

  constructor(init: Pick<Claim, 'nodeId' | 'key' | 'createRevision'> & { etcd: Etcd3; session: LeaseSession; logger: NodeLogger }) {
    ({ nodeId: this.nodeId, key: this.key, createRevision: this.createRevision, etcd: this.etcd, session: this.session, logger: this.logger } = init);
    this.keepaliveEpisode = new FailureEpisode(this.logger, { what: 'lease keepalives', level: 'warn', fields: { nodeId: this.nodeId } });
    this.armFence();
    // The first keepalive now: the claim may have been made with a lease last confirmed a
    // while ago (after a wait).
    this.keepaliveTimer = setInterval(() => void this.keepalive(), this.session.keepaliveEveryMs);
    this.keepaliveTimer.unref();
    void this.keepalive();
  }

  get leaseId(): string {
    return this.session.leaseId;
  }

  get ttlS(): number {
    return this.session.ttlS;
  }

  /** Why the claim was lost, or undefined while it holds. */
  get lost(): string | undefined {
    return this.lostReason;
  }

  /** ms since the last confirmed keepalive was sent. */
  get sinceConfirmedMs(): number {
    return this.session.sinceConfirmedMs;
  }

  onLost(handler: (reason: string) => void): void {
    if (this.lostReason !== undefined) handler(this.lostReason);
    else this.lostHandlers.push(handler);
  }

  /** Gives the claim up: called when a reservation write found the claim gone, or by the fence. */
  lose(reason: string): void {
    if (this.lostReason !== undefined) return;
    this.lostReason = reason;
    this.stopTimers();
    this.keepaliveEpisode.abandoned('the claim was lost');
    this.session.release();
    for (const handler of this.lostHandlers.splice(0)) handler(reason);
  }

  /** Rewrites the claim key's value (same lease, same create revision), if the claim still holds. */
  async updateInfo(value: string): Promise<void> {
    if (this.lostReason !== undefined) return;
    await ifOwner(this.etcd, this).then(this.etcd.put(this.key).value(value).lease(this.session.leaseId)).commit();
  }

  /** Lets go of the node id at once (revokes the lease, which deletes the claim key). */
  async release(): Promise<void> {
    if (this.released) return;
    this.released = true;
    this.stopTimers();
    this.keepaliveEpisode.abandoned('the claim was released');
    if (this.lostReason === undefined) this.lostReason = 'released';
    await this.session.revoke();
  }

  private stopTimers(): void {
    clearInterval(this.keepaliveTimer);
    clearTimeout(this.fenceTimer);
  }

  private armFence(): void {
    clearTimeout(this.fenceTimer);
    const validMs = this.session.validMs;
    const left = validMs - this.sinceConfirmedMs;
    this.fenceTimer = setTimeout(() => {
      // A timer may fire late (a paused process): measure again.
      if (this.sinceConfirmedMs >= validMs) {
        this.lose(`no lease keepalive confirmed for ${Math.round(this.sinceConfirmedMs)} ms (lease TTL ${this.ttlS} s): etcd may give node id ${this.nodeId} to another instance`);
      } else this.armFence();
    }, Math.max(0, left));
    this.fenceTimer.unref();
  }

  /**
   * Whether the claim key is gone, by a linearizable read (answered only through the
   * current leader). A member that was paused and still thinks it leads can answer a
   * keepalive with "lease not found" from its stale view while the cluster's lease lives;
   * the key is attached to the lease, so it is there exactly while the lease is. Unknown
   * (etcd unreachable) counts as not gone: the fence timer decides then.
   */
  private async claimKeyGone(): Promise<boolean> {
    try {
      const gone = !(await isOwner(this.etcd, this));
      if (!gone) this.logger.warn({ nodeId: this.nodeId }, `an etcd member said the lease of node id ${this.nodeId} is gone, but its claim key is there: a stale member; keeping the claim`);
      return gone;
    } catch {
      return false;
    }
  }

  private async keepalive(): Promise<void> {
    if (this.lostReason !== undefined || this.keepaliveInFlight) return;
    this.keepaliveInFlight = true;
    try {
      // Tried through every member that answers, for up to a keepalive period.
      await this.session.keepAlive();
      if (this.lostReason !== undefined) return;
      this.renewals++;
      this.armFence();
      this.keepaliveEpisode.recovered();
    } catch (error) {
      this.renewalFailures++;
      // Answered after the claim was lost or released: nothing left to keep alive.
      if (this.lostReason !== undefined) return;
      if (error instanceof LeaseGoneError && (await this.claimKeyGone())) {
        this.lose(`${error.message}: node id ${this.nodeId} may be given to another instance`);
        return;
      }
      this.keepaliveEpisode.failed(`lease keepalive failed (${(error as Error).message}); retrying`, {
        err: (error as Error).message,
        sinceConfirmedMs: Math.round(this.sinceConfirmedMs),
      });
    } finally {
      this.keepaliveInFlight = false;
    }
  }
}

/**
 * Claims a node id: the one asked for (waiting up to claimWaitMs for its holder to go
 * away), or the lowest free one. Waits for etcd up to coordinatorWaitMs.
 */
export async function claimNodeId(options: ClaimOptions): Promise<Claim> {
  const ttlS = options.leaseTtlS ?? DEFAULT_LEASE_TTL_S;
  const claimWaitMs = options.claimWaitMs ?? 0;
  const coordinatorWaitMs = options.coordinatorWaitMs ?? DEFAULT_COORDINATOR_WAIT_MS;
  const observe = options.observe ?? (() => undefined);
  const { etcd, cluster, logger } = options;
  const started = Date.now();
  const backoff = new Backoff(100, 2000);
  const unreachable = new FailureEpisode(logger, { what: 'etcd', level: 'warn', fields: { cluster } });
  // A re-claim waits for as long as it takes: there is no bound to tell.
  const bounded = Number.isFinite(coordinatorWaitMs) && coordinatorWaitMs < Number.MAX_SAFE_INTEGER;
  for (;;) {
    if (options.signal?.aborted) throw closing('claiming a node id');
    try {
      const claim = await claimOnce(options, ttlS, claimWaitMs, started, observe);
      unreachable.recovered();
      return claim;
    } catch (error) {
      if (error instanceof LeaseGoneError) {
        // The lease ran out while the claimant waited (a paused process, an etcd that lost
        // it): nothing was claimed with it; claim again with a new one.
        logger.warn({ cluster, err: error.message }, `the lease for claiming expired while waiting (${error.message}); claiming again with a new lease`);
        continue;
      }
      const refused = options.refusal?.(error);
      if (refused !== undefined && bounded) {
        unreachable.recovered();
        throw new HailstoneError('COORDINATOR_REFUSED', refused, { cause: error });
      }
      if (!etcdUnreachable(error)) {
        unreachable.recovered();
        throw error;
      }
      if (Date.now() - started >= coordinatorWaitMs) {
        throw new HailstoneError(
          'COORDINATOR_UNAVAILABLE',
          `etcd at ${describeEndpoints(etcd)} did not answer for ${Math.round((Date.now() - started) / 1000)} s (${etcdMessage(error)}): start etcd, or check --etcd`,
          { retryAfterMs: 1000 },
        );
      }
      options.onUnreachable?.(refused === undefined ? error : new Error(refused));
      unreachable.failed(
        bounded
          ? `etcd unreachable (${(error as Error).message}); waiting up to ${coordinatorWaitMs} ms for it before claiming a node id`
          : `etcd unreachable (${(error as Error).message}); waiting for it before claiming a node id`,
        { err: (error as Error).message, ...(bounded ? { waitMs: coordinatorWaitMs } : {}) },
      );
      await backoff.wait(options.signal, 'claiming a node id');
    }
  }
}

function describeEndpoints(etcd: Etcd3): string {
  const hosts = (etcd as unknown as { pool?: { options?: { hosts?: string | string[] } } }).pool?.options?.hosts;
  return Array.isArray(hosts) ? hosts.join(',') : String(hosts ?? 'the given endpoints');
}

async function claimOnce(options: ClaimOptions, ttlS: number, claimWaitMs: number, started: number, observe: (s: number) => void): Promise<Claim> {
  const { etcd, cluster, logger } = options;
  const value = JSON.stringify(options.info);
  const timed = async <T>(request: Promise<T>): Promise<T> => {
    const t = performance.now();
    const result = await request;
    observe((performance.now() - t) / 1000);
    return result;
  };
  // While waiting for a held node id the session is kept alive: a claim must start with a
  // fresh lease, or it would be fenced the moment it is made.
  const session = await LeaseSession.grant(etcd, ttlS, observe);
  try {
    for (;;) {
      if (options.signal?.aborted) throw closing('claiming a node id');
      await session.refresh();
      let candidates: number[];
      if (options.nodeId !== undefined) candidates = [options.nodeId];
      else {
        // Held by others; our own stale claims (fenced, lease not yet expired) are free to us.
        const claims = await timed(etcd.getAll().prefix(claimsPrefix(cluster)).strings());
        const taken = new Set(
          Object.entries(claims)
            .filter(([, value]) => holderInstance(value) !== options.info.instance)
            .map(([k]) => Number(k.slice(claimsPrefix(cluster).length))),
        );
        candidates = [];
        const prefer = options.preferNodeId;
        if (prefer !== undefined && prefer <= options.maxNodeId && !taken.has(prefer)) candidates.push(prefer);
        for (let id = 0; id <= options.maxNodeId; id++) if (!taken.has(id) && id !== prefer) candidates.push(id);
        if (options.reservationLimit !== undefined && candidates.length > 0) candidates = await passOverFarAhead(options, candidates, timed);
        if (candidates.length === 0) {
          throw new HailstoneError(
            'NO_FREE_NODE_ID',
            `all ${options.maxNodeId + 1} node ids of cluster ${cluster} are claimed by live instances: stop one, or use another cluster name (--cluster)`,
            { retryAfterMs: ttlS * 1000 },
          );
        }
      }
      for (let i = 0; i < candidates.length; i++) {
        const nodeId = candidates[i]!;
        const key = claimKey(cluster, nodeId);
        const result = await timed(
          etcd
            .if(key, 'Create', '==', 0)
            .then(etcd.put(key).value(value).lease(session.leaseId))
            .else(etcd.get(key))
            .commit(),
        );
        if (result.succeeded) {
          const claim = new Claim({ nodeId, key, createRevision: result.header.revision, etcd, session, logger });
          logger.info({ nodeId, cluster, leaseTtlS: ttlS, instance: options.info.instance }, `claimed node id ${nodeId} in cluster ${cluster}`);
          return claim;
        }
        const holder = result.responses[0]?.response_range?.kvs?.[0]?.value?.toString() ?? null;
        if (holderInstance(holder) === options.info.instance) {
          // Our own earlier claim, fenced but not yet expired: take it out of the way, and try
          // this id again at once.
          await timed(etcd.if(key, 'Value', '==', holder!).then(etcd.delete().key(key)).commit());
          i--;
          continue;
        }
        if (options.nodeId !== undefined) {
          if (Date.now() - started >= claimWaitMs) {
            throw new HailstoneError(
              'NODE_ID_TAKEN',
              `node id ${nodeId} of cluster ${cluster} is held by ${describeHolder(holder)}: stop it, wait for its lease (${ttlS} s) with --claim-wait-ms, or leave out --node-id to claim a free one`,
              { retryAfterMs: ttlS * 1000 },
            );
          }
        }
      }
      // Lost every race (free ids claimed meanwhile), or waiting for a held id: look again.
      await pause(options.nodeId !== undefined ? 250 : 10 + Math.random() * 40, options.signal, 'claiming a node id');
    }
  } catch (error) {
    await session.revoke();
    throw error;
  }
}
