// Claiming a node id in etcd: a key attached to a lease, created only if absent.
//
// The lease is a LeaseSession (lease-session.ts), kept alive by the claimant while it waits
// and by the claim once made (held-claim.ts). What a claimant costs etcd stays the same
// however large the fleet: a lease grant, one keys-only read of the claims, and one
// transaction per node id tried — a lost race reads the claims again, and the next try is a
// random free id (pick-node-id.ts), so races are rare even when the whole fleet starts at
// once.
//
// Every failure on the way is one of: etcd answered that the lease is gone (a paused
// claimant) — claim again with a new lease; etcd unreachable or failing — wait and try
// again, up to coordinatorWaitMs, then COORDINATOR_UNAVAILABLE; etcd refusing (TLS,
// password, permission) — COORDINATOR_REFUSED. No etcd client error leaves claimNodeId.

import { HailstoneError } from '../errors.js';
import { Backoff } from './backoff.js';
import { type Coordinator, coordinatorFailed, coordinatorMessage, coordinatorUnreachable, leaseGone, readOf } from './coordinator.js';
import { type FleetRuntime, closing, pause } from './runtime.js';
import { FailureEpisode } from '../log-episode.js';
import type { NodeLogger } from '../logger.js';
import { DEFAULT_COORDINATOR_WAIT_MS, DEFAULT_LEASE_TTL_S } from './defaults.js';
import { LeaseGoneError, LeaseSession } from './lease-session.js';
import type { ClaimInfo } from './etcd.js';
import { Claim } from './held-claim.js';
import { highestReservation, sayPassedOver } from './far-ahead.js';
import { pickFreeNodeId } from './pick-node-id.js';
import { mutated } from './mutations.js';
import { HolderWait } from './holder-wait.js';
import { Attempt } from './claim-attempt.js';

export { Claim };

export interface ClaimOptions {
  /** etcd, through the coordinator port. */
  coordinator: Coordinator;
  /** The clocks, timers and random numbers the claim runs on. */
  runtime: FleetRuntime;
  cluster: string;
  /** The node id wanted; undefined: a free one (preferNodeId first, when free; see pick-node-id.ts). */
  nodeId: number | undefined;
  preferNodeId?: number | undefined;
  /** The layout's largest node id. */
  maxNodeId: number;
  /**
   * With nodeId: how long to wait for a live holder to go away, counted from when etcd first
   * answered this claimant (not from its start: a server up before etcd must not spend the
   * wait on etcd's downtime). A holder provably gone (process-identity.ts) is not waited for;
   * one whose lease is running out unrenewed is waited for until it ends. Default 0.
   */
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
  /**
   * Free claims only: when every node id is held, how long to wait for one to free up
   * before NO_FREE_NODE_ID, counted from etcd's first answer. A whole fleet restarted after
   * a power loss finds every id held by its dead predecessors until their leases run out;
   * a server started then should wait one lease for them, not exit. Default 0.
   */
  freeWaitMs?: number;
  /** Random numbers in [0, 1) for picking among free ids. Default the runtime's. */
  random?: () => number;
  /** Told what a given node id's claim waits for (its holder, how long is left), and undefined once it no longer waits. */
  onWaiting?: (what: string | undefined) => void;
  /** When the process started (runtime.now()): only the 'claim-wait-from-start' mutation counts from it. */
  startedAt?: number;
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


/**
 * Claims a node id: the one asked for (waiting for its holder as claimWaitMs says), or a
 * free one. Waits for etcd up to coordinatorWaitMs. Rejects with a HailstoneError — or, for
 * an error that is not etcd's (a bug), with that error.
 */
export async function claimNodeId(options: ClaimOptions): Promise<Claim> {
  const coordinatorWaitMs = options.coordinatorWaitMs ?? DEFAULT_COORDINATOR_WAIT_MS;
  const { cluster, logger, runtime } = options;
  const started = runtime.now();
  const backoff = new Backoff(runtime, 100, 2000);
  const unreachable = new FailureEpisode(logger, { what: 'etcd', level: 'warn', fields: { cluster }, now: () => runtime.now() });
  // A re-claim waits for as long as it takes: there is no bound to tell.
  const bounded = Number.isFinite(coordinatorWaitMs) && coordinatorWaitMs < Number.MAX_SAFE_INTEGER;
  for (;;) {
    if (options.signal?.aborted) throw closing('claiming a node id');
    try {
      const claim = await claimOnce(options);
      unreachable.recovered();
      return claim;
    } catch (error) {
      // NODE_ID_TAKEN, NO_FREE_NODE_ID, CLOSED: said, and final.
      if (error instanceof HailstoneError) {
        unreachable.recovered();
        throw error;
      }
      if (error instanceof LeaseGoneError || leaseGone(error)) {
        // The lease ran out while the claimant waited or raced (a paused process, an etcd
        // that lost it) — in a keepalive or in the claim transaction itself: nothing was
        // claimed with it; claim again with a new one.
        logger.warn({ cluster, err: coordinatorMessage(error) }, `the lease for claiming expired while claiming (${coordinatorMessage(error)}); claiming again with a new lease`);
        continue;
      }
      const refused = options.refusal?.(error);
      if (refused !== undefined && bounded) {
        unreachable.recovered();
        throw new HailstoneError('COORDINATOR_REFUSED', refused, { cause: error });
      }
      // Anything but etcd failing is a bug here: said as such (INTERNAL), not waited on.
      if (!coordinatorFailed(error)) throw error;
      const how = coordinatorUnreachable(error) ? 'did not answer' : 'failed';
      if (runtime.now() - started >= coordinatorWaitMs) {
        throw new HailstoneError(
          'COORDINATOR_UNAVAILABLE',
          `etcd at ${options.coordinator.describe} ${how} for ${Math.round((runtime.now() - started) / 1000)} s (${coordinatorMessage(error)}): start etcd, or check --etcd`,
          { retryAfterMs: 1000, cause: error },
        );
      }
      options.onUnreachable?.(refused === undefined ? error : new Error(refused));
      unreachable.failed(
        `etcd ${how === 'failed' ? 'failed' : 'unreachable'} (${coordinatorMessage(error)}); waiting ${bounded ? `up to ${coordinatorWaitMs} ms ` : ''}for it before claiming a node id`,
        { err: coordinatorMessage(error), ...(bounded ? { waitMs: coordinatorWaitMs } : {}) },
      );
      await backoff.wait(options.signal, 'claiming a node id');
    }
  }
}

async function claimOnce(options: ClaimOptions): Promise<Claim> {
  // While waiting for a held node id the session is kept alive: a claim must start with a
  // fresh lease, or it would be fenced the moment it is made.
  const session = await LeaseSession.grant(options.coordinator, options.runtime, options.leaseTtlS ?? DEFAULT_LEASE_TTL_S, options.observe ?? (() => undefined));
  // etcd answered: a given id's holder is waited for from here. A server up before etcd
  // must not have spent its wait on etcd's downtime, and etcd restores every lease —
  // the dead holder's too — with a fresh TTL when it comes back.
  const answeredAt = mutated('claim-wait-from-start') ? (options.startedAt ?? options.runtime.now()) : options.runtime.now();
  const attempt = new Attempt(options, session);
  try {
    if (options.nodeId !== undefined) return await claimGiven(attempt, options.nodeId, answeredAt);
    return await claimFree(attempt, answeredAt);
  } catch (error) {
    await session.revoke();
    throw error;
  } finally {
    options.onWaiting?.(undefined);
  }
}

/** Claims the node id given, waiting for its holder as claimWaitMs says. */
async function claimGiven(attempt: Attempt, nodeId: number, answeredAt: number): Promise<Claim> {
  const { options } = attempt;
  const wait = new HolderWait(attempt, nodeId, answeredAt, options.claimWaitMs ?? 0, attempt.ttlS);
  for (;;) {
    await attempt.ready();
    const result = await attempt.take(nodeId, undefined);
    if (result.succeeded) return attempt.won(nodeId, result.revision);
    const kv = readOf(result, 0)[0];
    if (kv === undefined) continue; // gone between the compare and the read: try again
    if (attempt.ownLanded(kv)) return attempt.won(nodeId, kv.createRevision);
    const holder = kv.value;
    if (await attempt.clearDeadHolder(nodeId, holder)) continue;
    await wait.forHolder(holder, kv.lease);
  }
}

/** Claims a free node id: the preferred one if free, else a random one (pick-node-id.ts). */
async function claimFree(attempt: Attempt, answeredAt: number): Promise<Claim> {
  const { options } = attempt;
  const random = options.random ?? (() => options.runtime.random());
  const prefer = options.preferNodeId;
  if (prefer !== undefined && prefer <= options.maxNodeId) {
    // The id this claimant held before (re-claiming after a fence): taken back when free, or
    // when held only by its own earlier claim.
    for (let tries = 0; tries < 2; tries++) {
      await attempt.ready();
      const result = await attempt.take(prefer, undefined);
      if (result.succeeded) return attempt.won(prefer, result.revision);
      const kv = readOf(result, 0)[0];
      if (attempt.ownLanded(kv)) return attempt.won(prefer, kv!.createRevision);
      if (kv !== undefined && !(await attempt.clearDeadHolder(prefer, kv.value))) break;
    }
  }
  let taken = await attempt.claimedIds();
  // Free ids won and given back because a fast-clocked predecessor left them far ahead: how far.
  const passed = new Map<number, number>();
  const limit = options.reservationLimit;
  let waitingForFree = false;
  for (;;) {
    await attempt.ready();
    // While the free wait lasts, ids left far ahead are not taken: the ids dead holders
    // still hold (a whole fleet restarted) free up within a lease, and serve at once.
    const canWait = options.runtime.now() - answeredAt < (options.freeWaitMs ?? 0);
    let nodeId = pickFreeNodeId(taken, passed, options.maxNodeId, random);
    // Only far-ahead ids are left, and no more waiting: the least far ahead, after all.
    const fallback = nodeId === undefined && !canWait;
    if (fallback) nodeId = [...passed.entries()].filter(([id]) => !taken.has(id)).sort((a, b) => a[1] - b[1])[0]?.[0];
    if (nodeId === undefined && canWait) {
      if (!waitingForFree) {
        waitingForFree = true;
        const what = passed.size === 0 ? `all ${options.maxNodeId + 1} node ids of cluster ${options.cluster} are claimed` : `every free node id of cluster ${options.cluster} was left far ahead by a fast clock, and the rest are claimed`;
        options.logger.warn(
          { cluster: options.cluster, freeWaitMs: options.freeWaitMs },
          `${what}: waiting up to ${Math.ceil((options.freeWaitMs ?? 0) / 1000)} s for one to free up (after a whole-fleet restart, the dead holders' leases run out within their TTL)`,
        );
        options.onWaiting?.(`${passed.size === 0 ? `all ${options.maxNodeId + 1} node ids are claimed` : 'only node ids left far ahead are free'}: waiting for one to free up`);
      }
      // Read again about once a second: a whole fleet waiting must not flood etcd.
      await pause(options.runtime, 500 + random() * 1000, options.signal, 'claiming a node id');
      taken = await attempt.claimedIds();
      continue;
    }
    if (nodeId === undefined) {
      throw new HailstoneError(
        'NO_FREE_NODE_ID',
        `all ${options.maxNodeId + 1} node ids of cluster ${options.cluster} are claimed by live instances: stop one, or use another cluster name (--cluster)`,
        { retryAfterMs: attempt.ttlS * 1000 },
      );
    }
    const checkAhead = limit !== undefined && !fallback && !mutated('far-ahead-taken');
    const result = await attempt.take(nodeId, checkAhead ? 'reservations' : undefined);
    if (!result.succeeded) {
      const kv = readOf(result, 0)[0];
      if (attempt.ownLanded(kv)) return attempt.won(nodeId, kv!.createRevision);
      // Lost the race: read the claims as they are now (a read, served beside the writes),
      // so the next try is informed.
      taken = await attempt.claimedIds();
      taken.add(nodeId);
      continue;
    }
    if (checkAhead) {
      const aheadMs = highestReservation(readOf(result, 1)) - limit();
      // Passed over when another id is free now, or may be soon (the free wait lasts).
      const another = canWait || pickFreeNodeId(new Set([...taken, nodeId]), passed, options.maxNodeId, () => 0) !== undefined;
      if (aheadMs > 0 && another) {
        await attempt.drop(nodeId, result);
        passed.set(nodeId, aheadMs);
        sayPassedOver(options.logger, options.cluster, passed, (options.passedOver ??= {}));
        continue;
      }
    }
    return attempt.won(nodeId, result.revision);
  }
}
