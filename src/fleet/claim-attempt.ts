// One attempt at claiming a node id, under one lease: the claim transaction and what a
// claimant reads around it (claim.ts decides which ids to try and when to wait).

import type { ClaimOptions } from './claim.js';
import type { Compare, Coordinator, KeyValue, TxnResult } from './coordinator.js';
import { claimKey, claimsPrefix, reservationsPrefix } from './etcd.js';
import { Claim } from './held-claim.js';
import { describeHolder, holderInstance, holderOf } from './holder.js';
import type { WaitContext } from './holder-wait.js';
import type { LeaseSession } from './lease-session.js';
import { provablyGone } from './process-identity.js';
import { mutated } from './mutations.js';
import { type FleetRuntime, closing } from './runtime.js';

/** One attempt at a claim, under one lease. */
export class Attempt implements WaitContext {
  readonly value: string;
  readonly ttlS: number;
  private readonly observe: (seconds: number) => void;

  constructor(
    readonly options: ClaimOptions,
    readonly session: LeaseSession,
  ) {
    this.value = JSON.stringify(options.info);
    this.ttlS = session.ttlS;
    this.observe = options.observe ?? (() => undefined);
  }

  get coordinator(): Coordinator {
    return this.options.coordinator;
  }

  get runtime(): FleetRuntime {
    return this.options.runtime;
  }

  /** Times an etcd request for the latency histogram. */
  async timed<T>(request: Promise<T>): Promise<T> {
    const t = this.runtime.now();
    const result = await request;
    this.observe((this.runtime.now() - t) / 1000);
    return result;
  }

  /** Between tries: the claim is still wanted, and the lease kept fresh (a claim must start with one). */
  async ready(): Promise<void> {
    if (this.options.signal?.aborted) throw closing('claiming a node id');
    await this.session.refresh();
  }

  /**
   * The claim transaction: create the key if absent, attached to the lease; on success read
   * the id's reservations too (`then`), on failure the key as it is (its holder). Nothing
   * larger is read inside it: a transaction that writes is applied by etcd one at a time,
   * and a range over every claim there would hold up every other claimant.
   */
  async take(nodeId: number, then: 'reservations' | undefined): Promise<TxnResult> {
    const { options } = this;
    const key = claimKey(options.cluster, nodeId);
    const put = { put: key, value: this.value, lease: this.session.leaseId };
    const ops = then === 'reservations' ? [put, { range: reservationsPrefix(options.cluster, nodeId) }] : [put];
    const ifAbsent: Compare[] = mutated('no-claim-compare') ? [] : [{ key, target: 'create', equals: '0' }];
    return this.timed(this.coordinator.txn(ifAbsent, ops, [{ get: key }]));
  }

  /**
   * The key a lost transaction found is this attempt's own claim: an earlier try of the same
   * transaction was applied but its answer lost (a stalled member; the retry went to another).
   */
  ownLanded(kv: KeyValue | undefined): boolean {
    return kv !== undefined && kv.lease === this.session.leaseId;
  }

  /** A new Claim for a won transaction (its revision), or for this attempt's own landed claim (its create revision). */
  won(nodeId: number, createRevision: string): Claim {
    const { options, session } = this;
    const claim = new Claim({ nodeId, key: claimKey(options.cluster, nodeId), createRevision, session, logger: options.logger });
    options.logger.info({ nodeId, cluster: options.cluster, leaseTtlS: this.ttlS, instance: options.info.instance }, `claimed node id ${nodeId} in cluster ${options.cluster}`);
    return claim;
  }

  /** Every claimed node id, read keys only. */
  async claimedIds(): Promise<Set<number>> {
    const prefix = claimsPrefix(this.options.cluster);
    const { kvs } = await this.timed(this.coordinator.range(prefix, { keysOnly: true }));
    return new Set(kvs.map((kv) => Number(kv.key.slice(prefix.length))));
  }

  /**
   * A held id's holder that cannot be using it: this instance's own earlier claim (fenced,
   * its lease not yet expired), or a process on this machine that provably no longer runs.
   * Its claim is deleted through a compare on the value read, so a claim made meanwhile by
   * anyone else stays. True when the id may be tried again at once.
   */
  async clearDeadHolder(nodeId: number, holder: string): Promise<boolean> {
    const { options } = this;
    const ours = holderInstance(holder) === options.info.instance;
    if (!ours && !provablyGone(holderOf(holder), this.runtime.self().identity)) return false;
    if (!ours) {
      options.logger.warn(
        { nodeId, cluster: options.cluster },
        `node id ${nodeId} is held by ${describeHolder(holder)}, which no longer runs on this machine (same boot and pid namespace, no such process): taking the id without waiting out its lease`,
      );
    }
    const key = claimKey(options.cluster, nodeId);
    await this.timed(this.coordinator.txn([{ key, target: 'value', equals: holder }], [{ delete: key }]));
    return true;
  }

  /** Gives up a claim just won (a far-ahead id): nothing was issued under it. */
  async drop(nodeId: number, result: TxnResult): Promise<void> {
    const key = claimKey(this.options.cluster, nodeId);
    await this.timed(this.coordinator.txn([{ key, target: 'create', equals: result.revision }], [{ delete: key }]));
  }
}
