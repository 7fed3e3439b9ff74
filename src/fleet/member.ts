// One server's membership of a fleet: it claims a node id, opens its node over etcd, and
// when the claim is lost (fenced) stops that node at once and claims again — perhaps
// another node id — while the server answers UNAVAILABLE.

import { HailstoneError, checkInteger } from '../errors.js';
import { Backoff } from './backoff.js';
import { DEFAULT_LAYOUT } from '../layout.js';
import { FailureEpisode } from '../log-episode.js';
import type { NodeLogger } from '../logger.js';
import type { HailstoneNode } from '../node/node.js';
import { type NodeOptions, checkReservationMs } from '../node/options.js';
import { OwnershipLostError } from '../node/store.js';
import { claimAgainCures } from './claim-again.js';
import type { FleetStats } from '../node/source.js';
import { type Claim, claimNodeId } from './claim.js';
import { DEFAULT_COORDINATOR_WAIT_MS, DEFAULT_LEASE_TTL_S, MAX_LEASE_TTL_S, MIN_LEASE_TTL_S, defaultClaimWaitMs } from './defaults.js';
import { type Coordinator, coordinatorFailed } from './coordinator.js';
import { checkCluster, etcdTargets } from './etcd.js';
import { etcdCoordinator } from './etcd-adapter.js';
import type { FleetRuntime } from './runtime.js';
import { systemRuntime } from '../system-runtime.js';
import { tlsGiven } from './etcd-tls.js';
import { etcdRefusal } from './etcd-refusal.js';
import { type ClaimRef, EtcdStore, WHOLE_NODE, claimRefOf } from './etcd-store.js';
import { NodeReservation, RemoteReservationError, type ReservationLink } from './node-reservation.js';
import { openFleetNode } from './fleet-node.js';
import { LatencyHistogram } from '../latency.js';
import { InstanceInfo } from './instance-info.js';
import type { FleetEdges, FleetOptions } from './options.js';

export type { FleetOptions };

/** Past the lease TTL, how long a free claim waits for an id when every one is held: etcd revokes expired leases in batches. */
const FREE_WAIT_GRACE_MS = 5000;

export class FleetMember {
  readonly cluster: string;
  readonly latency = new LatencyHistogram();
  /** Opened on first use: a worker under its primary's claim never talks to etcd itself. */
  private connection: Coordinator | undefined;
  /** The clocks, timers and chance this member runs on. */
  private readonly runtime: FleetRuntime;
  /** The node's one reservation under the current claim (node-reservation.ts). */
  private reservation: { createRevision: string; link: NodeReservation } | undefined;
  private claim: Claim | undefined;
  private node: HailstoneNode | undefined;
  private claims = 0;
  private fences = 0;
  private pastRenewals = 0;
  private pastRenewalFailures = 0;
  private claiming = false;
  /** Why the last claim was lost, until a new one is made. */
  private fencedBy: string | undefined;
  /** Why the current attempt to claim fails, until one succeeds. */
  private problem: string | undefined;
  private closed = false;
  private reclaimLoop: Promise<void> | undefined;
  private readonly leaseTtlS: number;
  private givenNodeId: number | undefined;
  private lastNodeId: number | undefined;
  private closing: Promise<void> | undefined;
  /** Aborted by close(): ends every wait for etcd (claiming, retrying) at once. */
  private readonly closer = new AbortController();
  /** One adoption of a new claim at a time (a worker under its primary's claim). */
  private adopting: Promise<void> = Promise.resolve();
  /**
   * Resolves when this member can no longer serve and will not try again: a node id given
   * with nodeId was taken by another live instance while this one was fenced. The server
   * stops and says why (an orchestrator then sees the exit), rather than answer UNAVAILABLE
   * forever or quietly move to another id the operator did not give it.
   */
  readonly gaveUp: Promise<HailstoneError>;
  private giveUp: (error: HailstoneError) => void = () => undefined;
  /** The node's clock and lead, for passing over node ids left far ahead of it. */
  private readonly clock: () => number;
  private readonly maxLeadMs: number;
  /** The free ids passed over last, said once until they change. */
  private readonly passedOver: { last?: string } = {};
  /** Failed attempts to claim (at startup, or again after a fence), logged once per run of failures. */
  private readonly claimEpisode: FailureEpisode;
  /** What the claim key says about this instance. */
  private readonly self: InstanceInfo;
  /** runtime.now() when the member was made. */
  private readonly createdAt: number;

  constructor(
    private readonly options: FleetOptions & FleetEdges & Partial<NodeOptions>,
    /** The server this member claims for, or the primary of --workers N. */
    private readonly owner: {
      logger: NodeLogger;
      /** The UDP address it serves on, for the claim key. */
      udp: () => string;
      /** Told of each node opened after a re-claim. */
      onNode?: (node: HailstoneNode) => void;
      /** Claim only, open no node (the primary of --workers N). */
      claimOnly?: boolean;
      /** Told when the claim is lost, before claiming again. */
      onFence?: (reason: string) => void;
      /** Told of each new claim after a re-claim. */
      onClaim?: (claim: ClaimRef) => void;
    },
  ) {
    const { logger } = owner;
    this.runtime = options.runtime ?? systemRuntime;
    this.createdAt = this.runtime.now();
    this.cluster = checkCluster(options.cluster);
    this.leaseTtlS = checkInteger('leaseTtlS', options.leaseTtlS ?? DEFAULT_LEASE_TTL_S, MIN_LEASE_TTL_S, MAX_LEASE_TTL_S);
    // The endpoints are checked now (bad usage fails at once); the connection waits for first use.
    etcdTargets(options.etcd.endpoints, tlsGiven(options.etcd));
    this.gaveUp = new Promise((resolve) => {
      this.giveUp = resolve;
    });
    const { maxLeadMs } = checkReservationMs(options.maxLeadMs, options.reservationMs);
    this.maxLeadMs = maxLeadMs;
    const skew = options.clockSkewMs ?? 0;
    const base = options.clock ?? (() => this.runtime.wall());
    this.clock = () => base() + skew;
    this.claimEpisode = new FailureEpisode(logger, { what: 'claiming a node id', level: 'warn', fields: { cluster: this.cluster }, now: () => this.runtime.now() });
    this.self = new InstanceInfo({ logger, cluster: this.cluster, bound: () => owner.udp(), advertise: options.advertise, runtime: this.runtime });
  }

  private get coordinator(): Coordinator {
    // Closed: a late request (a worker's reservation, say) must not open a connection nobody closes.
    if (this.closed) throw new HailstoneError('CLOSED', 'the server is closing');
    this.connection ??= this.options.coordinator?.() ?? etcdCoordinator(
      this.options.etcd,
      (endpoint, up) => {
        if (up) this.owner.logger.info({ endpoint, cluster: this.cluster }, `etcd member ${endpoint} answers again`);
        else this.owner.logger.warn({ endpoint, cluster: this.cluster }, `etcd member ${endpoint} failed or stalled; requests go to the other members while it is probed`);
      },
      ({ ok, message }) => (ok ? this.owner.logger.info({ cluster: this.cluster }, message) : this.owner.logger.warn({ cluster: this.cluster }, message)),
    );
    return this.connection;
  }

  /**
   * The node's one reservation under the claim with this create revision, if it is the
   * current one (the primary of --workers N answers its workers' reservations from it).
   */
  reservationOf(createRevision: string): ReservationLink | undefined {
    const claim = this.claim;
    if (claim === undefined || claim.createRevision !== createRevision) return undefined;
    return this.reservationFor(claimRefOf(claim));
  }

  private reservationFor(claim: ClaimRef): NodeReservation {
    if (this.reservation?.createRevision !== claim.createRevision) {
      const store = new EtcdStore({ coordinator: this.coordinator, runtime: this.runtime, cluster: this.cluster, claim, worker: WHOLE_NODE, observe: (s) => this.latency.observe(s), refusal: (error) => this.refusal(error) });
      this.reservation = { createRevision: claim.createRevision, link: new NodeReservation(store, this.clock, this.maxLeadMs) };
    }
    return this.reservation.link;
  }

  /** Claims a node id and opens its node (or, under a given claim, only opens the node). */
  async start(): Promise<HailstoneNode | undefined> {
    const given = this.options.fleetClaim;
    if (given !== undefined) {
      this.node = await this.openUnder(given);
      this.givenNodeId = given.nodeId;
      return this.node;
    }
    // Claiming and opening may fail on the way — etcd gone during the first-start wait, the
    // claim lost before the first reservation was stored: try again until the bound, then
    // COORDINATOR_UNAVAILABLE. Only what retrying cannot fix (NODE_ID_TAKEN, NO_FREE_NODE_ID,
    // CLOCK_FAR_BEHIND, bad arguments) ends the start at once.
    const waitMs = this.options.coordinatorWaitMs ?? DEFAULT_COORDINATOR_WAIT_MS;
    const started = this.runtime.now();
    const backoff = new Backoff(this.runtime, 200, 2000);
    for (;;) {
      try {
        const node = await this.claimAndOpen(Math.max(0, waitMs - (this.runtime.now() - started)));
        this.self.checkAddress();
        this.node = node;
        this.problem = undefined;
        this.claimEpisode.recovered();
        return node;
      } catch (error) {
        if (this.closed) throw new HailstoneError('CLOSED', 'stopped while claiming a node id');
        // etcd refuses (TLS, password, permission): waiting cannot help; say why at once.
        const refused = error instanceof HailstoneError ? undefined : this.refusal(error);
        if (refused !== undefined) throw new HailstoneError('COORDINATOR_REFUSED', refused, { cause: error });
        if (!claimAgainCures(error)) throw error;
        if (this.runtime.now() - started >= waitMs) {
          throw new HailstoneError('COORDINATOR_UNAVAILABLE', `could not claim a node id and store its first reservation within ${waitMs} ms: ${(error as Error).message}`, { cause: error });
        }
        this.problem = `claiming failed (${(error as Error).message})`;
        this.claimEpisode.failed(`claiming a node id failed (${(error as Error).message}); trying again`, { err: (error as Error).message, retryInMs: backoff.nextMs });
        await backoff.wait(this.closer.signal, 'claiming a node id');
      }
    }
  }

  /**
   * A worker's start under its primary's claim: etcd failing for a moment (directly, or
   * through the primary's reservation) is waited on up to coordinatorWaitMs, as a claim is;
   * a claim found gone is said at once (the primary claims again, and the worker follows).
   */
  private async openUnder(claim: ClaimRef): Promise<HailstoneNode> {
    const waitMs = this.options.coordinatorWaitMs ?? DEFAULT_COORDINATOR_WAIT_MS;
    const started = this.runtime.now();
    const backoff = new Backoff(this.runtime, 200, 2000);
    for (;;) {
      try {
        const node = await this.openNode(claim);
        this.claimEpisode.recovered();
        return node;
      } catch (error) {
        if (this.closed) throw new HailstoneError('CLOSED', 'stopped while opening the node');
        // etcd failing, here or at the primary (a primary's other failures, a damaged key, say, are not waited on).
        const transient = coordinatorFailed(error) || (error instanceof RemoteReservationError && /^coordinator \(etcd\) (unreachable|failing)/.test(error.described ?? ''));
        if (!transient) throw error;
        if (this.runtime.now() - started >= waitMs) {
          throw new HailstoneError('COORDINATOR_UNAVAILABLE', `could not store the node's first reservation within ${waitMs} ms: ${(error as Error).message}`, { cause: error });
        }
        this.claimEpisode.failed(`opening the node under the claim failed (${(error as Error).message}); trying again`, { err: (error as Error).message, retryInMs: backoff.nextMs });
        await backoff.wait(this.closer.signal, 'opening the node');
      }
    }
  }

  /**
   * A worker under its primary's claim: the primary claimed again (perhaps another node id).
   * Closes the node of the old claim and opens one under the new claim; the server keeps its
   * socket and answers UNAVAILABLE until the new node has stored its first reservation.
   */
  adopt(claim: ClaimRef): Promise<void> {
    this.adopting = this.adopting.then(async () => {
      if (this.closed) return;
      const old = this.node;
      old?.stopIssuing('the server claimed a node id again');
      await old?.close();
      const node = await this.openUnder(claim);
      if (this.closed) {
        await node.close();
        return;
      }
      this.node = node;
      this.givenNodeId = claim.nodeId;
      this.owner.onNode?.(node);
    });
    return this.adopting;
  }

  /** Gives up the current claim (a worker found it gone): fence, then claim again. */
  loseClaim(reason: string, createRevision?: string): void {
    // A worker's write under a claim already replaced (it had not switched yet) says nothing
    // about the current one.
    if (createRevision !== undefined && createRevision !== this.claim?.createRevision) {
      this.owner.logger.info({ cluster: this.cluster, reason }, 'a worker found an earlier claim gone; the current claim stands');
      return;
    }
    this.claim?.lose(reason);
  }

  /** Updates what the claim key says about this instance (its UDP address, once known). */
  async announce(): Promise<void> {
    this.self.checkAddress();
    await this.claim?.updateInfo(JSON.stringify(this.self.info()));
  }

  stats(): FleetStats {
    return {
      cluster: this.cluster,
      nodeId: this.givenNodeId ?? (this.claim?.lost === undefined ? this.claim?.nodeId : undefined),
      instance: this.self.instance,
      claims: this.claims,
      fences: this.fences,
      renewals: this.pastRenewals + (this.claim?.renewals ?? 0),
      renewalFailures: this.pastRenewalFailures + (this.claim?.renewalFailures ?? 0),
      sinceKeepaliveMs: this.claim?.lost === undefined ? this.claim?.sinceConfirmedMs : undefined,
      leaseTtlS: this.leaseTtlS,
      claiming: this.claiming,
      problem: this.fencedBy === undefined && this.problem === undefined ? undefined : [this.fencedBy, this.problem].filter((p) => p !== undefined).join('; '),
      etcdLatency: this.latency.snapshot(),
      endpoints: Object.fromEntries(this.connection?.health ?? []),
    };
  }

  /** The claim a worker process writes under (--workers N: the primary claims, workers write). */
  claimRef(): ClaimRef | undefined {
    return this.claim === undefined ? undefined : claimRefOf(this.claim);
  }

  close(): Promise<void> {
    this.closing ??= (async () => {
      this.closed = true;
      // Every wait for etcd ends now, with CLOSED.
      this.closer.abort();
      await this.reclaimLoop;
      await this.adopting.catch(() => undefined);
      await this.node?.close();
      await this.claim?.release();
      this.connection?.close();
    })();
    return this.closing;
  }

  private async claimAndOpen(coordinatorWaitMs: number): Promise<HailstoneNode | undefined> {
    this.claiming = true;
    try {
      const layout = this.options.layout ?? DEFAULT_LAYOUT;
      const claim = await claimNodeId({
        coordinator: this.coordinator,
        runtime: this.runtime,
        cluster: this.cluster,
        nodeId: this.options.nodeId,
        // Without a fixed id, take the last one back when it is free (or our own stale claim).
        preferNodeId: this.lastNodeId,
        maxNodeId: layout.maxNodeId,
        claimWaitMs: this.options.claimWaitMs ?? defaultClaimWaitMs(this.options.nodeId !== undefined, this.leaseTtlS),
        leaseTtlS: this.leaseTtlS,
        coordinatorWaitMs,
        info: this.self.info(),
        logger: this.owner.logger,
        observe: (s) => this.latency.observe(s),
        // Free claims pass over ids a fast-clocked predecessor left far ahead of this clock,
        // and wait a lease (and a little) for an id when every one is held: after a power
        // loss of a whole fleet, its dead holders' leases run out within their TTL.
        ...(this.options.nodeId === undefined
          ? { reservationLimit: () => this.clock() + this.maxLeadMs, passedOver: this.passedOver, freeWaitMs: this.leaseTtlS * 1000 + FREE_WAIT_GRACE_MS }
          : {}),
        signal: this.closer.signal,
        startedAt: this.createdAt,
        refusal: (error) => this.refusal(error),
        onUnreachable: (error) => {
          this.problem = `unreachable (${(error as Error)?.message ?? String(error)})`;
        },
        // Waiting for a given id's holder: /healthz says for whom and how long is left.
        onWaiting: (what) => {
          this.problem = what;
        },
      });
      this.claims++;
      this.lastNodeId = claim.nodeId;
      let node: HailstoneNode | undefined;
      try {
        if (!this.owner.claimOnly) node = await this.openNode(claimRefOf(claim));
        // Lost while the node opened (a first-start wait outlived the lease): not a claim to run on.
        if (claim.lost !== undefined) throw new OwnershipLostError(`the claim of node id ${claim.nodeId} was lost while its node opened: ${claim.lost}`);
      } catch (error) {
        await node?.close();
        await claim.release();
        throw error;
      }
      this.claim = claim;
      claim.onLost((reason) => this.fenced(claim, node, reason));
      return node;
    } finally {
      this.claiming = false;
    }
  }

  /** Why etcd refuses this server (TLS, password, permission), if it does. */
  private refusal(error: unknown): string | undefined {
    return etcdRefusal(error, { etcd: this.options.etcd, cluster: this.cluster, role: 'server' });
  }

  /** Opens a node over etcd under a claim (and over its state dir too, when one is given). */
  private openNode(claim: ClaimRef): Promise<HailstoneNode> {
    const link = this.options.reservationLink?.(claim) ?? this.reservationFor(claim);
    return openFleetNode({ cluster: this.cluster, options: this.options, logger: this.owner.logger, link }, claim);
  }


  private fenced(claim: Claim, node: HailstoneNode | undefined, reason: string): void {
    if (this.closed) return;
    this.fences++;
    this.fencedBy = `fenced: the claim of node id ${claim.nodeId} was lost (${reason})`;
    node?.stopIssuing(reason);
    this.owner.onFence?.(reason);
    this.owner.logger.error({ nodeId: claim.nodeId, cluster: this.cluster, reason }, `fenced: node id ${claim.nodeId} stopped issuing; claiming a node id again`);
    this.startReclaim(claim, node);
  }

  /** One re-claim loop at a time; a claim lost while the loop was finishing starts another. */
  private startReclaim(claim: Claim, node: HailstoneNode | undefined): void {
    if (this.reclaimLoop !== undefined) return;
    this.reclaimLoop = this.reclaim(claim, node).finally(() => {
      this.reclaimLoop = undefined;
      const current = this.claim;
      if (!this.closed && current !== undefined && current.lost !== undefined && current !== claim) this.startReclaim(current, this.node);
    });
  }

  private async reclaim(old: Claim, oldNode: HailstoneNode | undefined): Promise<void> {
    this.pastRenewals += old.renewals;
    this.pastRenewalFailures += old.renewalFailures;
    await oldNode?.close();
    const backoff = new Backoff(this.runtime, 200, 5000);
    while (!this.closed) {
      try {
        const node = await this.claimAndOpen(Number.MAX_SAFE_INTEGER);
        if (this.closed) {
          await node?.close();
          return;
        }
        this.node = node;
        this.fencedBy = undefined;
        this.problem = undefined;
        this.claimEpisode.recovered();
        const nodeId = this.claim!.nodeId;
        this.owner.logger.warn({ nodeId, was: old.nodeId, cluster: this.cluster }, nodeId === old.nodeId ? `re-claimed node id ${nodeId}` : `re-claimed: node id changed from ${old.nodeId} to ${nodeId}`);
        if (node !== undefined) this.owner.onNode?.(node);
        this.owner.onClaim?.(claimRefOf(this.claim!));
        return;
      } catch (error) {
        if (this.options.nodeId !== undefined && error instanceof HailstoneError && error.code === 'NODE_ID_TAKEN') {
          const reason =
            `node id ${this.options.nodeId} was taken by another instance while this server was fenced (${old.lost ?? 'claim lost'}), ` +
            `and it is the id this server was given (--node-id): this server stops. ${error.message}`;
          this.problem = 'gave up: the given node id is held by another instance';
          this.claimEpisode.abandoned('the given node id is held by another instance');
          this.owner.logger.error({ nodeId: this.options.nodeId, cluster: this.cluster }, reason);
          this.giveUp(new HailstoneError('NODE_ID_TAKEN', reason, { retryAfterMs: this.leaseTtlS * 1000 }));
          return;
        }
        this.problem = `claiming again failed (${this.refusal(error) ?? (error as Error).message})`;
        this.claimEpisode.failed(`claiming a node id again failed (${(error as Error).message}); retrying`, { err: (error as Error).message, retryInMs: backoff.nextMs });
        await backoff.wait(this.closer.signal, 'claiming a node id').catch(() => undefined);
      }
    }
    this.claimEpisode.abandoned('the server closed');
  }
}
