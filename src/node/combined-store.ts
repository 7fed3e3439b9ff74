// A reservation store made of two: the node's reservation is durable only once both hold it.

import { type ReservationStore, type StoredFloor, reachOf } from './store.js';

/**
 * Two stores as one: the primary names what happens after a loss and how to react; both
 * must store R before it is used, and the floor is the higher of the two. Fleet mode puts a
 * local state dir under etcd this way (etcd restored from an old backup cannot take the node
 * below what this machine issued).
 */
export class CombinedStore implements ReservationStore {
  readonly where: string;
  readonly ownership: string;
  readonly afterLoss: string;
  readonly lostRetryAfterMs?: number;
  readonly farAheadAdvice?: string;
  readonly slowWriteAdvice?: string;
  readonly renewalMarginMs: number;
  /** The store whose save failed last: it names the failure. */
  private failed: ReservationStore | undefined;

  constructor(
    private readonly primary: ReservationStore,
    private readonly extra: ReservationStore,
  ) {
    this.where = `${primary.where} and ${extra.where}`;
    this.ownership = `${primary.ownership} and ${extra.ownership}`;
    this.afterLoss = primary.afterLoss;
    this.farAheadAdvice = primary.farAheadAdvice;
    this.slowWriteAdvice = primary.slowWriteAdvice;
    this.renewalMarginMs = Math.max(primary.renewalMarginMs ?? 0, extra.renewalMarginMs ?? 0);
    this.lostRetryAfterMs = primary.lostRetryAfterMs;
  }

  async open(): Promise<StoredFloor> {
    const a = await this.primary.open();
    let b: StoredFloor;
    try {
      b = await this.extra.open();
    } catch (error) {
      await this.primary.close().catch(() => undefined);
      throw error;
    }
    const floors = [a.floor, b.floor].filter((f): f is number => f !== undefined);
    return { floor: floors.length === 0 ? undefined : Math.max(...floors), firstStart: a.firstStart && b.firstStart };
  }

  async save(reservedUntil: number, writtenAt: number): Promise<number> {
    this.failed = this.primary;
    // The primary may have stored more than asked: the extra store must hold that too before
    // the node uses it, or it would be no floor at all.
    const reach = reachOf(reservedUntil, await this.primary.save(reservedUntil, writtenAt));
    this.failed = this.extra;
    await this.extra.save(reach, writtenAt);
    this.failed = undefined;
    return reach;
  }

  describeFailure(error: unknown): string | undefined {
    return this.failed?.describeFailure?.(error);
  }

  async close(): Promise<void> {
    await Promise.allSettled([this.primary.close(), this.extra.close()]);
  }
}
