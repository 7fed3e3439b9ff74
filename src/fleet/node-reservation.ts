// One reservation per node in etcd, whatever its worker count.
//
// Every stripe of a node (each worker of --workers N, or the one node of a single process)
// issues only up to an R that etcd acknowledged under the node's claim. Rather than each
// stripe writing its own key twice a second over its own connection — etcd load growing
// with nodes × workers — the claim's holder keeps one key for the whole node and writes it
// for all of them: a stripe's save is answered from what etcd already acknowledged, or joins
// the next write. Each write reaches as far as the lead allows, and the stripes issue up to
// what it reached, so a node costs etcd one write per (lead − renewal margin) — about one a
// second with the defaults — however many stripes it has.
//
// Uniqueness still rests on etcd alone: every write is EtcdStore's transaction, compared
// against the claim and the key's last revision, and a stripe's save resolves only once an
// R at or past what it asked for was acknowledged. A new holder of the node id starts
// above every key under the node id's prefix — this one and any a past worker count left.

import { OwnershipLostError, type ReservationStore, type StoredFloor, reachOf } from '../node/store.js';

/** What a node's store asks of its node's one reservation: in process, or from a worker over IPC. */
export interface ReservationLink {
  /** The highest R stored for the node id, or acknowledged here since: where a stripe starts. */
  open(): Promise<StoredFloor>;
  /** Resolves once etcd has acknowledged an R ≥ `until` under the claim, with that R. */
  reserve(until: number): Promise<number>;
  /** How a failed reservation reads to an operator. */
  describeFailure(error: unknown): string | undefined;
}

interface Waiter {
  until: number;
  resolve: (acked: number) => void;
  reject: (error: unknown) => void;
}

/** The node's one reservation under one claim, written for every stripe (held by the claim's holder). */
export class NodeReservation implements ReservationLink {
  private opened: Promise<StoredFloor> | undefined;
  /** The highest R etcd acknowledged through this reservation. */
  private acked = -Infinity;
  private readonly waiting: Waiter[] = [];
  private writing = false;
  /** Writes made, for tests and benchmarks. */
  writes = 0;

  constructor(
    /** The node's key in etcd (EtcdStore): one transaction per write. */
    private readonly store: ReservationStore,
    /** The node's clock (with its skew): how far a write may reach. */
    private readonly clock: () => number,
    private readonly maxLeadMs: number,
  ) {}

  async open(): Promise<StoredFloor> {
    // The stored floor is read once per claim; a stripe that starts later (a restarted
    // worker) resumes above what was acknowledged since, too.
    this.opened ??= this.store.open();
    let stored: StoredFloor;
    try {
      stored = await this.opened;
    } catch (error) {
      this.opened = undefined;
      throw error;
    }
    if (this.acked === -Infinity) return stored;
    return { floor: Math.max(stored.floor ?? -Infinity, this.acked), firstStart: false };
  }

  reserve(until: number): Promise<number> {
    if (until <= this.acked) return Promise.resolve(this.acked);
    return new Promise((resolve, reject) => {
      this.waiting.push({ until, resolve, reject });
      this.flush();
    });
  }

  describeFailure(error: unknown): string | undefined {
    return this.store.describeFailure?.(error);
  }

  /**
   * One write at a time, for every stripe waiting: as far as the lead allows (at least the
   * highest R asked for), so the stripes' next several renewals are answered without a write.
   */
  private flush(): void {
    if (this.writing) return;
    const batch = this.waiting.splice(0);
    const covered = batch.filter((w) => w.until <= this.acked);
    for (const w of covered) w.resolve(this.acked);
    const open = batch.filter((w) => w.until > this.acked);
    if (open.length === 0) return;
    const wanted = Math.max(...open.map((w) => w.until));
    const now = this.clock();
    // Never past the lead: a restart then always finds the reservation within it.
    const target = Math.max(wanted, now + this.maxLeadMs);
    this.writing = true;
    this.writes++;
    this.store.save(target, now).then(
      (stored) => {
        this.acked = Math.max(this.acked, reachOf(target, stored));
        for (const w of open) w.resolve(this.acked);
      },
      (error: unknown) => {
        for (const w of open) w.reject(error);
      },
    ).finally(() => {
      this.writing = false;
      this.flush();
    });
  }
}

/** A stripe's store: its node's one reservation, through a link. */
export class LinkedStore implements ReservationStore {
  readonly where: string;
  readonly ownership: string;
  readonly afterLoss: string;
  readonly lostRetryAfterMs?: number;
  readonly farAheadAdvice?: string;
  readonly slowWriteAdvice?: string;
  readonly renewalMarginMs?: number;

  constructor(
    private readonly link: ReservationLink,
    /** What the node's own store says of itself (EtcdStore's traits). */
    traits: Pick<ReservationStore, 'where' | 'ownership' | 'afterLoss' | 'lostRetryAfterMs' | 'farAheadAdvice' | 'slowWriteAdvice' | 'renewalMarginMs'>,
  ) {
    ({
      where: this.where,
      ownership: this.ownership,
      afterLoss: this.afterLoss,
      lostRetryAfterMs: this.lostRetryAfterMs,
      farAheadAdvice: this.farAheadAdvice,
      slowWriteAdvice: this.slowWriteAdvice,
      renewalMarginMs: this.renewalMarginMs,
    } = traits);
  }

  open(): Promise<StoredFloor> {
    return this.link.open();
  }

  /** Resolves with the R etcd acknowledged for the node: at least `reservedUntil`, often more. */
  save(reservedUntil: number): Promise<number> {
    return this.link.reserve(reservedUntil);
  }

  describeFailure(error: unknown): string | undefined {
    return this.link.describeFailure(error);
  }

  async close(): Promise<void> {
    // The reservation stays; the claim is released by its holder.
  }
}

/** A failure as it crosses from the claim's holder to a worker: lost ownership stays typed. */
export interface SentFailure {
  lost: boolean;
  message: string;
  /** How the holder described it (describeFailure). */
  described?: string | undefined;
}

export function sendFailure(link: ReservationLink, error: unknown): SentFailure {
  return { lost: error instanceof OwnershipLostError, message: (error as Error)?.message ?? String(error), described: link.describeFailure(error) };
}

/** The error a worker's node sees for a failure its primary's reservation met. */
export class RemoteReservationError extends Error {
  override readonly name = 'RemoteReservationError';
  constructor(
    message: string,
    readonly described: string | undefined,
  ) {
    super(message);
  }
}

export function receivedFailure(failure: SentFailure): Error {
  return failure.lost ? new OwnershipLostError(failure.message) : new RemoteReservationError(failure.message, failure.described);
}
