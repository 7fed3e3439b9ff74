// A node id held through an etcd lease: the claim key (attached to the lease) kept alive on
// a timer, and given up by itself before etcd could expire the lease.
//
// The claim is what every reservation write compares against (see etcd-store.ts): while
// the key exists with this claim's create revision, this instance holds the node id. The
// lease decides only *when* the key goes away after the holder stops renewing it — never
// whether two instances issue the same ids. When no keepalive has been confirmed for TTL
// minus a safety margin (measured on the monotonic clock from when it was sent), the claim
// is lost. A process that was paused (GC, SIGSTOP, a frozen VM) past that point finds out
// on its first timer after it resumes.

import type { Coordinator } from './coordinator.js';
import { type Cancel, type FleetRuntime, pause } from './runtime.js';
import { EPISODE_SUMMARY_EVERY_MS, FailureEpisode } from '../log-episode.js';
import type { NodeLogger } from '../logger.js';
import { ifOwner, isOwner } from './etcd.js';
import { LeaseGoneError, type LeaseSession } from './lease-session.js';
import { mutated } from './mutations.js';

/** After a stale member's "lease not found" (the claim key is there), the keepalive is sent again this soon. */
const STALE_ANSWER_PAUSE_MS = 100;

/** A node id held through an etcd lease. */
export class Claim {
  readonly nodeId: number;
  readonly key: string;
  /** The claim key's create revision: the compare every reservation write makes. */
  readonly createRevision: string;
  private readonly coordinator: Coordinator;
  private readonly runtime: FleetRuntime;
  private readonly session: LeaseSession;
  private readonly logger: NodeLogger;
  private lostReason: string | undefined;
  private readonly lostHandlers: ((reason: string) => void)[] = [];
  private keepaliveTimer: Cancel | undefined;
  private fenceTimer: Cancel | undefined;
  private released = false;
  /** Failed keepalives are logged once per run of failures. */
  private readonly keepaliveEpisode: FailureEpisode;
  /** When a stale member's answer was last said in the log (runtime.now()). */
  private staleSaidAt = -Infinity;
  /** One keepalive (with its retries through other members) at a time. */
  private keepaliveInFlight = false;
  /** Keepalives confirmed, and failed. */
  renewals = 0;
  renewalFailures = 0;

  constructor(init: Pick<Claim, 'nodeId' | 'key' | 'createRevision'> & { session: LeaseSession; logger: NodeLogger }) {
    ({ nodeId: this.nodeId, key: this.key, createRevision: this.createRevision, session: this.session, logger: this.logger } = init);
    this.coordinator = this.session.coordinator;
    this.runtime = this.session.runtime;
    this.keepaliveEpisode = new FailureEpisode(this.logger, { what: 'lease keepalives', level: 'warn', fields: { nodeId: this.nodeId }, now: () => this.runtime.now() });
    this.armFence();
    this.keepaliveTimer = this.runtime.every(this.session.keepaliveEveryMs, () => void this.keepalive());
    // The first keepalive now when the lease was last confirmed a while ago (after a wait);
    // a lease granted or renewed just before the claim needs none yet — at a fleet's cold
    // start that is one request fewer per claimant.
    if (this.session.sinceConfirmedMs >= this.session.keepaliveEveryMs / 2) void this.keepalive();
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
    await this.coordinator.txn([ifOwner(this)], [{ put: this.key, value, lease: this.session.leaseId }]);
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
    this.keepaliveTimer?.cancel();
    this.fenceTimer?.cancel();
  }

  private armFence(): void {
    this.fenceTimer?.cancel();
    const validMs = this.session.validMs;
    const left = validMs - this.sinceConfirmedMs;
    this.fenceTimer = this.runtime.after(Math.max(0, left), () => {
      // A timer may fire late (a paused process): measure again.
      if (this.sinceConfirmedMs >= validMs) {
        this.lose(`no lease keepalive confirmed for ${Math.round(this.sinceConfirmedMs)} ms (lease TTL ${this.ttlS} s): etcd may give node id ${this.nodeId} to another instance`);
      } else this.armFence();
    }, true);
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
      const gone = !(await isOwner(this.coordinator, this));
      // Said once per episode of stale answers, not at every one.
      if (!gone && this.runtime.now() - this.staleSaidAt >= EPISODE_SUMMARY_EVERY_MS) {
        this.staleSaidAt = this.runtime.now();
        this.logger.warn({ nodeId: this.nodeId }, `an etcd member said the lease of node id ${this.nodeId} is gone, but its claim key is there: a stale member; keeping the claim`);
      }
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
      for (;;) {
        try {
          await this.session.keepAlive();
          break;
        } catch (error) {
          // Answered after the claim was lost or released: nothing left to keep alive.
          if (!(error instanceof LeaseGoneError) || this.lostReason !== undefined) throw error;
          if (mutated('deposed-leader-fences') || (await this.claimKeyGone())) {
            this.lose(`${error.message}: node id ${this.nodeId} may be given to another instance`);
            return;
          }
          // A stale member said so while the claim key is there: ask again shortly, until the
          // fence is due — the next answer may come from the leader, and a keepalive period
          // lost to each stale answer would fence a healthy holder while a deposed leader
          // keeps answering.
          if (this.sinceConfirmedMs + STALE_ANSWER_PAUSE_MS >= this.session.validMs) throw error;
          await pause(this.runtime, STALE_ANSWER_PAUSE_MS, undefined, 'keeping the lease alive');
        }
      }
      if (this.lostReason !== undefined) return;
      this.renewals++;
      this.armFence();
      this.keepaliveEpisode.recovered();
    } catch (error) {
      this.renewalFailures++;
      if (this.lostReason !== undefined) return;
      this.keepaliveEpisode.failed(`lease keepalive failed (${(error as Error).message}); retrying`, {
        err: (error as Error).message,
        sinceConfirmedMs: Math.round(this.sinceConfirmedMs),
      });
    } finally {
      this.keepaliveInFlight = false;
    }
  }
}
