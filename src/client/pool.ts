// The client's id pool (opt-in): ids fetched ahead in batches, so a burst of nextId()
// calls costs no round trip each.
//
// - Refilled in the background when it falls below lowWater, one refill in flight at a time.
// - An id older than maxAgeMs (counted from when its batch arrived) is never handed out: it
//   is dropped, so pooled ids stay within maxAgeMs of time order with everyone else's.
// - close() discards what is left. A dropped or discarded id is gone: never handed out, and
//   never reused by anyone (the server issued it once).
// - Callers that find the pool empty wait for the refill; if it fails they get its error.

import { HailstoneError, InvalidArgumentError, checkInteger } from '../errors.js';

export interface PoolOptions {
  /** How many ids to hold when full. Default 1024. */
  size?: number;
  /** Refill when fewer than this many are left. Default size / 4. */
  lowWater?: number;
  /** Drop ids whose batch arrived longer ago than this. Default 1000 ms. */
  maxAgeMs?: number;
}

export interface PoolStats {
  /** Ids held now. */
  available: number;
  refills: number;
  /** Ids dropped for age (maxAgeMs) or discarded by close(). */
  dropped: number;
}

interface Batch {
  ids: bigint[];
  next: number;
  arrivedAt: number;
}

interface Waiter {
  resolve: (id: bigint) => void;
  reject: (error: unknown) => void;
}

export class IdPool {
  private readonly size: number;
  private readonly lowWater: number;
  private readonly maxAgeMs: number;
  private readonly batches: Batch[] = [];
  private readonly waiters: Waiter[] = [];
  private held = 0;
  private refilling: Promise<void> | undefined;
  private closed = false;
  private readonly counters = { refills: 0, dropped: 0 };

  constructor(
    private readonly fetch: (count: number) => Promise<bigint[]>,
    options: PoolOptions,
    private readonly now: () => number = Date.now,
  ) {
    if (options === null || typeof options !== 'object') throw new InvalidArgumentError('pool', 'must be an object such as { size: 1024 }');
    this.size = checkInteger('pool.size', options.size ?? 1024, 1, 1_000_000);
    this.lowWater = checkInteger('pool.lowWater', options.lowWater ?? Math.floor(this.size / 4), 0, this.size - 1);
    this.maxAgeMs = checkInteger('pool.maxAgeMs', options.maxAgeMs ?? 1000, 1, 3_600_000);
  }

  stats(): PoolStats {
    this.expire();
    return { available: this.held, ...this.counters };
  }

  /** An id from the pool now, or undefined when it is empty (a refill is then under way). */
  take(): bigint | undefined {
    if (this.closed) return undefined;
    this.expire();
    const id = this.shift();
    this.maybeRefill();
    return id;
  }

  /** An id from the pool, waiting for a refill when it is empty. */
  next(): Promise<bigint> {
    if (this.closed) return Promise.reject(new HailstoneError('CLOSED', 'the client was closed'));
    const id = this.take();
    if (id !== undefined) return Promise.resolve(id);
    return new Promise((resolve, reject) => {
      this.waiters.push({ resolve, reject });
      this.maybeRefill();
    });
  }

  /** Discards what is left; callers still waiting get CLOSED. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.counters.dropped += this.held;
    this.held = 0;
    this.batches.length = 0;
    const error = new HailstoneError('CLOSED', 'the client was closed');
    for (const w of this.waiters.splice(0)) w.reject(error);
  }

  private shift(): bigint | undefined {
    while (this.batches.length > 0) {
      const batch = this.batches[0]!;
      if (batch.next < batch.ids.length) {
        this.held--;
        return batch.ids[batch.next++];
      }
      this.batches.shift();
    }
    return undefined;
  }

  /** Drops whole batches that arrived more than maxAgeMs ago. */
  private expire(): void {
    const oldest = this.now() - this.maxAgeMs;
    while (this.batches.length > 0 && this.batches[0]!.arrivedAt < oldest) {
      const batch = this.batches.shift()!;
      const left = batch.ids.length - batch.next;
      this.held -= left;
      this.counters.dropped += left;
    }
  }

  private maybeRefill(): void {
    if (this.closed || this.refilling !== undefined) return;
    if (this.held >= this.lowWater && this.waiters.length === 0) return;
    const want = Math.max(this.size - this.held, this.waiters.length);
    this.refilling = this.fetch(want)
      .then(
        (ids) => {
          this.counters.refills++;
          if (this.closed) {
            this.counters.dropped += ids.length;
            return;
          }
          this.batches.push({ ids, next: 0, arrivedAt: this.now() });
          this.held += ids.length;
          // Waiters first, in the order they came.
          while (this.waiters.length > 0) {
            const id = this.shift();
            if (id === undefined) break;
            this.waiters.shift()!.resolve(id);
          }
        },
        (error: unknown) => {
          // Nothing to hand out: every waiter gets why. The next call tries again.
          for (const w of this.waiters.splice(0)) w.reject(error);
        },
      )
      .finally(() => {
        this.refilling = undefined;
        // Callers that came while this refill was in flight, or a pool still below lowWater.
        if (this.waiters.length > 0 || (this.held < this.lowWater && this.batches.length > 0)) this.maybeRefill();
      });
  }
}
