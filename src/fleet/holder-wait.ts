// Waiting for the holder of a node id given with --node-id.
//
// The claimant asks etcd how long the holder's lease has left. A holder that renews it is
// alive: after claimWaitMs the answer is NODE_ID_TAKEN. A holder whose lease only runs down
// is waited for until the lease ends, even a little past claimWaitMs — the lease etcd
// restored with a fresh TTL when it came back, say, plus the second it adds on electing a
// leader — so a server never exits because of its own dead predecessor. The wait is said
// once, with the holder and the time left, and told to the caller for /healthz.

import { HailstoneError } from '../errors.js';
import type { NodeLogger } from '../logger.js';
import type { Coordinator } from './coordinator.js';
import { describeHolder } from './holder.js';
import { type FleetRuntime, pause } from './runtime.js';

/** A lease whose end moved later than first seen by more than this was renewed (etcd counts whole seconds). */
const RENEWAL_SEEN_MS = 1500;
/** Past claimWaitMs, an unrenewed lease due to end within this is still waited for. */
const ENDING_GRACE_MS = 3000;

/** What the wait needs of the claim attempt. */
export interface WaitContext {
  readonly coordinator: Coordinator;
  readonly runtime: FleetRuntime;
  readonly options: { cluster: string; logger: NodeLogger; signal?: AbortSignal | undefined; onWaiting?: ((what: string | undefined) => void) | undefined };
  timed<T>(request: Promise<T>): Promise<T>;
}

export class HolderWait {
  private holder: string | undefined;
  /** When the holder's lease was first seen due to end (runtime.now() ms). */
  private firstEndsAt = 0;
  private renewed = false;

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
    const left = lease === '0' ? Infinity : await this.context.timed(leaseLeftMs(coordinator, lease));
    // The lease is gone: its key goes with it — look again at once.
    if (left === undefined) return pause(runtime, 50, options.signal, 'claiming a node id');
    const now = runtime.now();
    const endsAt = now + left;
    const first = holder !== this.holder;
    if (first) {
      this.holder = holder;
      this.firstEndsAt = endsAt;
      this.renewed = false;
    } else if (endsAt > this.firstEndsAt + RENEWAL_SEEN_MS) this.renewed = true;
    const waited = now - this.answeredAt;
    const endingUnrenewed = !this.renewed && left <= ENDING_GRACE_MS;
    if (this.claimWaitMs === 0 || (waited >= this.claimWaitMs && !endingUnrenewed)) {
      throw new HailstoneError(
        'NODE_ID_TAKEN',
        `node id ${this.nodeId} of cluster ${options.cluster} is held by ${describeHolder(holder)}${this.renewed ? ', which keeps its lease alive' : ''}: stop it, wait for its lease (${this.ttlS} s) with --claim-wait-ms, or leave out --node-id to claim a free one`,
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
 * ends within n + 1 s), or undefined when it is gone.
 */
async function leaseLeftMs(coordinator: Coordinator, leaseId: string): Promise<number | undefined> {
  const ttl = await coordinator.leaseTimeToLive(leaseId);
  return ttl === undefined ? undefined : (ttl.leftS + 1) * 1000;
}
