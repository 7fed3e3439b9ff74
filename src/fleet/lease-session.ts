// An etcd lease kept alive on the monotonic clock: etcd's concurrency Session to the claim's
// Mutex. A claimant keeps it alive while it waits for a held node id (a claim must start
// with a fresh lease, or it would be fenced the moment it is made); the claim, once made,
// keeps it alive on a timer and fences itself when no keepalive was confirmed in time. The
// session decides only *when* a claim may be lost; whether an instance holds a node id is
// the claim key's compare (etcd.ts ifOwner).
//
// Keepalives are timed from the moment each was *sent*: etcd extends the lease after that
// moment, so the lease lives at least TTL past it.

import { type Coordinator, coordinatorUnreachable, leaseGone } from './coordinator.js';
import type { FleetRuntime } from './runtime.js';

/** How long before the lease could expire the holder gives up the claim by itself. */
export function safetyMarginMs(ttlS: number): number {
  return Math.max(1000, (ttlS * 1000) / 5);
}

/**
 * The lease a claimant or holder was keeping alive is gone (revoked, or expired while the
 * process could not renew it): a new claim needs a new lease.
 */
export class LeaseGoneError extends Error {
  override readonly name = 'LeaseGoneError';
}

/**
 * One keepalive for a lease, sent again at once through another member when one fails or
 * stalls, until `budgetMs` is spent. Resolves with the send time of the attempt etcd
 * confirmed (etcd extends the lease after it, so the lease lives at least TTL past it).
 */
export async function keepLeaseAlive(coordinator: Coordinator, runtime: FleetRuntime, leaseId: string, budgetMs: number, observe: (seconds: number) => void): Promise<number> {
  const until = runtime.now() + budgetMs;
  for (;;) {
    const sentAt = runtime.now();
    try {
      // Each attempt gets what is left of the budget, at most a third of it: a stalled member
      // must leave time for two more.
      await coordinator.keepAlive(leaseId, Math.max(100, Math.min(until - sentAt, budgetMs / 3)));
      observe((runtime.now() - sentAt) / 1000);
      return sentAt;
    } catch (error) {
      if (leaseGone(error)) throw new LeaseGoneError(`etcd says the lease is gone (${(error as Error).message})`);
      if (!coordinatorUnreachable(error) || runtime.now() >= until) throw error;
    }
  }
}

/** A granted lease and when its last keepalive etcd confirmed was sent. */
export class LeaseSession {
  /** runtime.now() when the last confirmed keepalive (or the grant) was sent. */
  private confirmedSentAt: number;

  private constructor(
    readonly coordinator: Coordinator,
    readonly runtime: FleetRuntime,
    readonly leaseId: string,
    readonly ttlS: number,
    grantSentAt: number,
    private readonly observe: (seconds: number) => void,
  ) {
    this.confirmedSentAt = grantSentAt;
  }

  /** Grants a lease of `ttlS` seconds. */
  static async grant(coordinator: Coordinator, runtime: FleetRuntime, ttlS: number, observe: (seconds: number) => void): Promise<LeaseSession> {
    const sentAt = runtime.now();
    const leaseId = await coordinator.grantLease(ttlS);
    observe((runtime.now() - sentAt) / 1000);
    return new LeaseSession(coordinator, runtime, leaseId, ttlS, sentAt, observe);
  }

  /** ms since the last confirmed keepalive (or the grant) was sent. */
  get sinceConfirmedMs(): number {
    return this.runtime.now() - this.confirmedSentAt;
  }

  /** How long after a confirmed keepalive was sent the lease is surely alive: TTL minus the safety margin. */
  get validMs(): number {
    return this.ttlS * 1000 - safetyMarginMs(this.ttlS);
  }

  /** Three keepalives per valid window. */
  get keepaliveEveryMs(): number {
    return this.validMs / 3;
  }

  /**
   * One keepalive, tried through every member that answers for up to a keepalive period.
   * Rejects with LeaseGoneError when etcd says the lease is gone, or with the last error.
   */
  async keepAlive(): Promise<void> {
    const sentAt = await keepLeaseAlive(this.coordinator, this.runtime, this.leaseId, this.keepaliveEveryMs, this.observe);
    if (sentAt > this.confirmedSentAt) this.confirmedSentAt = sentAt;
  }

  /** Keeps it alive while waiting: a keepalive once a third of the TTL has passed since the last. */
  async refresh(): Promise<void> {
    if (this.sinceConfirmedMs >= (this.ttlS * 1000) / 3) await this.keepAlive();
  }

  /** Stops handling the lease here (it expires in etcd by itself). */
  release(): void {
    this.coordinator.forgetLease(this.leaseId);
  }

  /** Revokes the lease at once (deleting the keys attached to it); failures are ignored. */
  async revoke(): Promise<void> {
    await this.coordinator.revokeLease(this.leaseId).catch(() => undefined);
  }
}
