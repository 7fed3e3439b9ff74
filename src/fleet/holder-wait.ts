// Waiting for the holder of a node id given with --node-id.
//
// The claimant asks etcd how long the holder's lease has left. A holder that renews it is
// alive: after claimWaitMs the answer is NODE_ID_TAKEN. A holder whose lease only runs down
// is waited for until the lease ends, even past claimWaitMs, so a server never exits
// because of its own dead predecessor. A lease seen extended once is not yet renewed: etcd
// gives every lease a fresh TTL when it elects a leader (after a restart, say), and a
// holder that lives renews its lease again a keepalive period later. An extension seen
// across a leader's term change is the election's, and is not counted at all. The wait is said
// once, with the holder and the time left, and told to the caller for /healthz.

import { HailstoneError } from '../errors.js';
import type { NodeLogger } from '../logger.js';
import type { Coordinator } from './coordinator.js';
import { describeHolder } from './holder.js';
import { type FleetRuntime, pause } from './runtime.js';
import { mutated } from './mutations.js';

/** A lease whose end moved later than last seen by more than this was extended (etcd counts whole seconds). */
const EXTENSION_SEEN_MS = 1500;
/** The 'claim-wait-from-start' mutation's old rule: past claimWaitMs, only a lease ending within this was waited for. */
const OLD_ENDING_GRACE_MS = 3000;
/** Extensions seen before the holder counts as renewing its lease (one may be a leader election's). */
const EXTENSIONS_OF_A_LIVE_HOLDER = 2;

/** What the wait needs of the claim attempt. */
export interface WaitContext {
  readonly coordinator: Coordinator;
  readonly runtime: FleetRuntime;
  readonly options: { cluster: string; logger: NodeLogger; signal?: AbortSignal | undefined; onWaiting?: ((what: string | undefined) => void) | undefined };
  timed<T>(request: Promise<T>): Promise<T>;
}

export class HolderWait {
  private holder: string | undefined;
  /** When the holder's lease was due to end at the last extension seen (or the first look, or the last election). */
  private endsAt = 0;
  /** How often the lease was seen extended by its holder (within one leader's term). */
  private extensions = 0;
  /** The leader's term at the last look. */
  private term = '';

  constructor(
    private readonly context: WaitContext,
    private readonly nodeId: number,
    /** When etcd first answered this claimant (runtime.now() ms). */
    private readonly answeredAt: number,
    private readonly claimWaitMs: number,
    private readonly ttlS: number,
  ) {}

  /**
   * One look at the holder of the claim key (its value and lease): resolves after a pause
   * when it is worth trying again, rejects with NODE_ID_TAKEN when the holder lives.
   */
  async forHolder(holder: string, lease: string): Promise<void> {
    const { coordinator, runtime, options } = this.context;
    // Measured from when the question was sent: a slow answer (or a late event loop) must
    // not make the lease's end look later, as a renewal would.
    const now = runtime.now();
    const ttl = lease === '0' ? { leftMs: Infinity, term: '' } : await this.context.timed(leaseLeft(coordinator, lease));
    // The lease is gone: its key goes with it — look again at once.
    if (ttl === undefined) return pause(runtime, 50, options.signal, 'claiming a node id');
    const left = ttl.leftMs;
    const endsAt = now + left;
    const first = holder !== this.holder;
    if (first) {
      this.holder = holder;
      this.extensions = 0;
      this.endsAt = endsAt;
    } else if (ttl.term !== this.term) {
      // A new leader gave the lease a fresh TTL: not the holder's doing; measure from here.
      this.endsAt = endsAt;
    } else if (endsAt > this.endsAt + EXTENSION_SEEN_MS) {
      this.extensions++;
      this.endsAt = endsAt;
    }
    this.term = ttl.term;
    const renewed = this.extensions >= EXTENSIONS_OF_A_LIVE_HOLDER;
    const waited = now - this.answeredAt;
    // A lease that only runs down ends within its TTL: waited for past claimWaitMs — but
    // only a lease no longer than this cluster's (one granted for an hour by hand is not a
    // predecessor's), and not forever (etcd electing leader after leader renews it each time).
    const runningDown =
      !renewed &&
      left <= (this.ttlS + 2) * 1000 &&
      waited < this.claimWaitMs + 2 * this.ttlS * 1000 &&
      (!mutated('claim-wait-from-start') || left <= OLD_ENDING_GRACE_MS);
    if (this.claimWaitMs === 0 || (waited >= this.claimWaitMs && !runningDown)) {
      throw new HailstoneError(
        'NODE_ID_TAKEN',
        `node id ${this.nodeId} of cluster ${options.cluster} is held by ${describeHolder(holder)}${renewed ? ', which keeps its lease alive' : ''}: stop it, wait for its lease (${this.ttlS} s) with --claim-wait-ms, or leave out --node-id to claim a free one`,
        { retryAfterMs: this.ttlS * 1000 },
      );
    }
    const what = `node id ${this.nodeId} is held by ${describeHolder(holder)}: waiting for its lease to end (${Number.isFinite(left) ? `at most ${Math.ceil(left / 1000)} s left` : 'it has no lease'}; giving up ${Math.max(0, Math.ceil((this.claimWaitMs - waited) / 1000))} s from now if it is renewed)`;
    if (first) options.logger.warn({ nodeId: this.nodeId, cluster: options.cluster, leaseLeftMs: Number.isFinite(left) ? left : null, claimWaitMs: this.claimWaitMs }, what);
    options.onWaiting?.(what);
    await pause(runtime, Math.max(100, Math.min(1000, left / 2)), options.signal, 'claiming a node id');
  }
}

/**
 * How long a lease has left at most, ms (etcd counts whole seconds: a lease with TTL n left
 * ends within n + 1 s), and the term of the leader that said so; undefined when it is gone.
 */
async function leaseLeft(coordinator: Coordinator, leaseId: string): Promise<{ leftMs: number; term: string } | undefined> {
  const ttl = await coordinator.leaseTimeToLive(leaseId);
  return ttl === undefined ? undefined : { leftMs: (ttl.leftS + 1) * 1000, term: ttl.term };
}
