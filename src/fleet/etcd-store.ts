// A node's reservation kept in etcd, for one worker stripe of a claimed node id.
//
// The rule that makes fleet mode safe: an id is issued only with a timestamp at or below an
// R that etcd acknowledged in a transaction which (a) compared the claim key's create
// revision with this holder's claim — so the write fails once the claim is gone or belongs
// to another instance — and (b) compared the reservation key's mod revision with the one
// this holder last wrote (0: none), so no other writer came in between and R only ever
// rises. A new holder of the node id starts strictly after the highest R stored for it
// over every stripe and worker count. Whatever a paused old holder can still issue is ≤ its
// acknowledged R, and everything the new holder issues is above it.

import { DEFAULT_LAYOUT, type WorkerStripe, workerStripe } from '../layout.js';
import { HailstoneError } from '../errors.js';
import { OwnershipLostError, type ReservationStore, type StoredFloor } from '../node/store.js';
import type { Claim } from './claim.js';
import { type Coordinator, coordinatorUnreachable, readOf } from './coordinator.js';
import { ETCD_ATTEMPT_TIMEOUT_MS, formatReservation, ifOwner, parseReservation, reservationKey, reservationsPrefix } from './etcd.js';
import type { FleetRuntime } from './runtime.js';
import { mutated } from './mutations.js';

/** What a worker needs to write under a claim made by another process (the primary). */
export interface ClaimRef {
  nodeId: number;
  key: string;
  createRevision: string;
  /** Tells the claim's holder that a write found the claim gone. */
  lose?: (reason: string) => void;
}

export function claimRefOf(claim: Claim): ClaimRef {
  return { nodeId: claim.nodeId, key: claim.key, createRevision: claim.createRevision, lose: (reason) => claim.lose(reason) };
}

/** The stripe a node's one reservation is kept under (node-reservation.ts): one stripe of one, every sequence number. */
export const WHOLE_NODE: WorkerStripe = workerStripe(DEFAULT_LAYOUT, { index: 0, count: 1 });

/** What an etcd store says of itself: the same for a stripe that reaches it through its node's reservation. */
export function etcdStoreTraits(key: string) {
  return {
    where: `etcd key ${key}`,
    ownership: 'etcd claim',
    afterLoss: 'the server claims a node id again by itself (perhaps another one); ask another server meanwhile',
    lostRetryAfterMs: 1000,
    /**
     * One attempt stalled on a hung member, and the retry on the next: renewals start with at
     * least this much reservation left, so a member that stops answering costs no refusal.
     */
    renewalMarginMs: ETCD_ATTEMPT_TIMEOUT_MS + 250,
    slowWriteAdvice:
      'a slow or stalled etcd member is passed over by itself (see hailstone_etcd_endpoint_up); if writes stay slow, check etcd\'s disk and network, or raise --max-lead-ms',
    farAheadAdvice: 'Check that instance\'s clock and this one\'s (NTP/chrony); leave out --node-id to claim another free node id',
  } as const;
}

export class EtcdStore implements ReservationStore {
  readonly where: string;
  readonly ownership: string;
  readonly afterLoss: string;
  readonly lostRetryAfterMs: number;
  readonly renewalMarginMs: number;
  readonly slowWriteAdvice: string;
  readonly farAheadAdvice: string;
  private readonly coordinator: Coordinator;
  private readonly runtime: FleetRuntime;
  private readonly cluster: string;
  private readonly claim: ClaimRef;
  /** Told each etcd request's duration, seconds. */
  private readonly observe: (seconds: number) => void;
  private readonly key: string;
  /** Mod revision of the reservation key as this holder last saw or wrote it ('0': absent). */
  private modRevision = '0';
  /** Rs sent whose answer never came: one of them may be what the key holds now. */
  private readonly unconfirmed = new Set<number>();

  /** Why etcd refuses this server (TLS, password, permission), if that is what an error says. */
  private readonly refusal: (error: unknown) => string | undefined;

  constructor(init: {
    coordinator: Coordinator;
    runtime: FleetRuntime;
    cluster: string;
    claim: ClaimRef;
    worker: WorkerStripe;
    observe?: (seconds: number) => void;
    refusal?: (error: unknown) => string | undefined;
  }) {
    ({ coordinator: this.coordinator, runtime: this.runtime, cluster: this.cluster, claim: this.claim, observe: this.observe = () => undefined, refusal: this.refusal = () => undefined } = init);
    this.key = reservationKey(this.cluster, this.claim.nodeId, init.worker);
    ({
      where: this.where,
      ownership: this.ownership,
      afterLoss: this.afterLoss,
      lostRetryAfterMs: this.lostRetryAfterMs,
      renewalMarginMs: this.renewalMarginMs,
      slowWriteAdvice: this.slowWriteAdvice,
      farAheadAdvice: this.farAheadAdvice,
    } = etcdStoreTraits(this.key));
  }

  async open(): Promise<StoredFloor> {
    // Every stripe of every worker count this node id ever ran with: resume after them all.
    // Read in one transaction with the claim's compare: the floor is read while the claim
    // holds, and one request proves both.
    const prefix = reservationsPrefix(this.cluster, this.claim.nodeId);
    const started = this.runtime.now();
    const result = await this.coordinator.txn([ifOwner(this.claim)], [{ range: prefix }]);
    this.observe((this.runtime.now() - started) / 1000);
    if (!result.succeeded) {
      const reason = `the claim ${this.claim.key} is gone or belongs to another instance`;
      this.claim.lose?.(reason);
      throw new OwnershipLostError(reason);
    }
    let floor: number | undefined;
    for (const kv of readOf(result, 0)) {
      const value = parseReservation(kv.value);
      if (value === undefined) {
        throw new HailstoneError(
          'STATE_CORRUPT',
          `etcd key ${kv.key} holds ${JSON.stringify(kv.value)}, not a reservation. Nothing will be issued for node id ${this.claim.nodeId} until it is fixed: put the highest R any holder used (ms since the Unix epoch, 16 digits) or, if unknown, a time safely past every id issued`,
        );
      }
      floor = Math.max(floor ?? -Infinity, value);
      if (kv.key === this.key) this.modRevision = kv.modRevision;
    }
    return { floor, firstStart: floor === undefined };
  }

  async save(reservedUntil: number): Promise<number> {
    for (let tries = 0; ; tries++) {
      const started = this.runtime.now();
      // Unconfirmed until etcd answers: a write whose answer is lost may still have landed.
      this.unconfirmed.add(reservedUntil);
      const result = await this.coordinator.txn(
        [...(mutated('no-claim-compare') ? [] : [ifOwner(this.claim)]), { key: this.key, target: 'mod', equals: this.modRevision }],
        [{ put: this.key, value: formatReservation(reservedUntil) }],
      );
      this.observe((this.runtime.now() - started) / 1000);
      if (result.succeeded) {
        this.modRevision = result.revision;
        // Any earlier write still in flight compares an older revision: it can no longer land.
        this.unconfirmed.clear();
        return reservedUntil;
      }
      const landed = tries === 0 && !mutated('landed-write-fences') ? await this.ownLanded() : undefined;
      if (landed !== undefined && landed >= reservedUntil) return landed;
      if (landed !== undefined) continue; // an earlier, lower R of ours landed: write this one over it
      const reason = `the reservation write to ${this.key} was refused: the claim ${this.claim.key} (revision ${this.claim.createRevision}) is gone or another writer changed the reservation`;
      this.claim.lose?.(reason);
      throw new OwnershipLostError(reason);
    }
  }

  /**
   * A write whose answer was lost (a timeout, a stalled member) may have been applied: the
   * next write's revision compare then fails on our own write. It is recognised by a read
   * that finds the claim still ours and the key holding an R this store sent and never saw
   * answered — every write to the key compares its writer's claim, so while the claim is
   * ours no one else can have written it. Then the store goes on from that revision (and
   * that R is stored). Returns the R found, or undefined when the key is not ours.
   */
  private async ownLanded(): Promise<number | undefined> {
    // One transaction: the key as it is while the claim holds — two reads could see the
    // claim ours and then the key as a later holder wrote it.
    const result = await this.coordinator.txn([ifOwner(this.claim)], [{ get: this.key }]);
    const current = readOf(result, 0)[0];
    if (!result.succeeded || current === undefined) return undefined;
    const value = parseReservation(current.value);
    if (value === undefined || !this.unconfirmed.has(value)) return undefined;
    this.modRevision = current.modRevision;
    this.unconfirmed.clear();
    return value;
  }

  describeFailure(error: unknown): string {
    // A credential that stopped working (a certificate expired, a password changed, a role
    // revoked) reads like an outage to the node; the log and /healthz say which.
    const refused = this.refusal(error);
    if (refused !== undefined) return `coordinator (etcd) refuses: ${refused}`;
    return coordinatorUnreachable(error) ? 'coordinator (etcd) unreachable' : 'coordinator (etcd) failing';
  }

  async close(): Promise<void> {
    // The reservation stays; the claim is released by its holder.
  }
}
