// When a node extends its durable reservation R, and how far.
//
// A healthy node must never reach R: reaching it means refusing (UNAVAILABLE) while
// nothing is wrong. A renewal is one durable write — temp file, fsync, rename, directory
// fsync; or an etcd transaction — and it has to be finished before the clock (or the
// logical time under load) reaches R. So a renewal starts while more of the reservation is
// left than the write has been seen to take, with room for a timer that fires late and
// for the check interval itself:
//
//   margin = 2 × (slowest recent write) + (latest recent timer lag) + check interval
//   start  when  R − reference < max(reservationMs / 2, margin), margin at most ¾ of maxLeadMs
//   reach  reference + max(reservationMs, margin + reservationMs / 2), never past now + maxLeadMs
//
// On a healthy disk (writes of a few ms) this is the old rule: renew at half the
// reservation, one write every reservationMs / 2. On slow storage the margin grows with
// what it measured, and so does the reach, so writes per second stay about the same —
// the trade is that R runs further ahead of the clock, up to maxLeadMs, which is what a
// restart already allows for. Storage slower than the lead can cover still ends in
// refusals: fail closed is not weakened, the margin only uses time the lead allows.
//
// Pure: the node feeds it what it observed and asks; time is a parameter.

/** How many recent writes and timer lags the margin remembers. */
const WINDOW = 16;
/** The most of the lead the margin may take (see marginMs). */
const MAX_MARGIN_SHARE = 0.75;

export interface RenewalPlan {
  /** Start a write now. */
  due: boolean;
  /** If due: the reservation to write (ms since the epoch); > reservedUntil. */
  target: number;
  /** ms until it will be due at the earliest, if the reference follows the clock. */
  dueInMs: number;
}

export class RenewalPlanner {
  private readonly writes: number[] = [];
  private readonly lags: number[] = [];

  constructor(
    private readonly reservationMs: number,
    private readonly maxLeadMs: number,
    /** How often the node checks (its timer's period). */
    private readonly checkEveryMs: number,
    /**
     * The least margin whatever the writes measured (capped like the margin): a store whose
     * write can stall for a known time before it tries elsewhere (an etcd member's attempt
     * deadline) needs that much left from the first renewal on, not after the first stall.
     */
    private readonly minMarginMs = 0,
  ) {}

  /** A durable write finished after `ms` (successful or not: both say how slow the store is). */
  noteWrite(ms: number): void {
    remember(this.writes, Math.max(0, ms));
  }

  /** The node's timer fired `ms` later than asked (event-loop lag). */
  noteTimerLag(ms: number): void {
    remember(this.lags, Math.max(0, ms));
  }

  /** Slowest recent write, ms (0 before any). */
  get slowestWriteMs(): number {
    return Math.max(0, ...this.writes);
  }

  /** Latest recent timer firing, ms late (0 before any). */
  get worstTimerLagMs(): number {
    return Math.max(0, ...this.lags);
  }

  /** The margin the writes and lag seen call for, before the lead caps it. */
  wantedMarginMs(): number {
    const lag = Math.max(0, ...this.lags);
    const least = Math.min(this.minMarginMs, this.maxLeadMs * MAX_MARGIN_SHARE);
    return Math.max(this.reservationMs / 2, least, 2 * this.slowestWriteMs + lag + this.checkEveryMs);
  }

  /** How much of the reservation must be left when a renewal starts. */
  marginMs(): number {
    // Never more than three quarters of the lead: each renewal must still buy a quarter of it,
    // or renewals would run back to back, each buying a few ms while loading the store further.
    return Math.min(this.wantedMarginMs(), this.maxLeadMs * MAX_MARGIN_SHARE);
  }

  /**
   * True when the writes and lag seen need more margin than the lead allows: the store (or
   * the event loop) is too slow for this --max-lead-ms, and the reservation can run out
   * however early renewals start.
   */
  get tooSlowForLead(): boolean {
    return this.wantedMarginMs() > this.maxLeadMs * MAX_MARGIN_SHARE;
  }

  /**
   * The plan at `now` (the clock) with logical time at `logical` (ahead of the clock under
   * load) and the durable reservation at `reservedUntil`.
   */
  plan(now: number, logical: number | undefined, reservedUntil: number): RenewalPlan {
    const reference = Math.max(now, logical ?? now);
    const margin = this.marginMs();
    const remaining = reservedUntil - reference;
    const reach = Math.max(this.reservationMs, margin + this.reservationMs / 2);
    // Never reserve past what the lead lets the generator use anyway: a restart then always
    // finds the reservation within its lead, and resumes without waiting.
    const target = Math.max(reservedUntil, Math.min(reference + reach, now + this.maxLeadMs));
    const due = remaining < margin && target > reservedUntil;
    return { due, target, dueInMs: due ? 0 : Math.max(0, remaining - margin) };
  }
}

function remember(list: number[], value: number): void {
  list.push(value);
  if (list.length > WINDOW) list.shift();
}
