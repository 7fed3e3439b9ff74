// Per-source rate limiting: a token bucket per source address, so a flood from one
// source cannot starve the others. Excess datagrams are dropped (and counted by the
// server) before any other work.
//
// Memory is bounded: at most `maxSources` buckets. When full, buckets idle long enough to
// have refilled completely are dropped (they carry no state worth keeping); if none is,
// new sources share one overflow bucket, so a spoofed-source flood cannot grow memory.

import { InvalidArgumentError, describe } from '../errors.js';

export interface RateLimitOptions {
  /** Sustained datagrams per second allowed from one source. */
  perSecond: number;
  /** How many may arrive at once. Default: one second's worth. */
  burst?: number;
  /** The most sources tracked at once. Default 100,000. */
  maxSources?: number;
}

interface Bucket {
  tokens: number;
  updated: number;
}

export class RateLimiter {
  private readonly rate: number;
  private readonly burst: number;
  private readonly maxSources: number;
  private readonly buckets = new Map<string, Bucket>();
  private readonly overflow: Bucket;
  private lastEviction = -Infinity;

  constructor(options: RateLimitOptions, now = Date.now()) {
    const { perSecond } = options;
    if (typeof perSecond !== 'number' || !(perSecond > 0) || !Number.isFinite(perSecond)) {
      throw new InvalidArgumentError('rateLimit.perSecond', `must be a positive number, got ${describe(perSecond)}`);
    }
    const burst = options.burst ?? perSecond;
    if (typeof burst !== 'number' || !(burst >= 1) || !Number.isFinite(burst)) {
      throw new InvalidArgumentError('rateLimit.burst', `must be a number of at least 1, got ${describe(burst)}`);
    }
    this.rate = perSecond / 1000;
    this.burst = burst;
    this.maxSources = options.maxSources ?? 100_000;
    this.overflow = { tokens: burst, updated: now };
  }

  /** Whether a datagram from `source` may be processed now; takes one token if so. */
  allow(source: string, now: number): boolean {
    let bucket = this.buckets.get(source);
    if (bucket === undefined) {
      if (this.buckets.size >= this.maxSources) this.evictIdle(now);
      if (this.buckets.size >= this.maxSources) {
        bucket = this.overflow;
      } else {
        bucket = { tokens: this.burst, updated: now };
        this.buckets.set(source, bucket);
      }
    }
    const tokens = Math.min(this.burst, bucket.tokens + (now - bucket.updated) * this.rate);
    bucket.updated = now;
    if (tokens < 1) {
      bucket.tokens = tokens;
      return false;
    }
    bucket.tokens = tokens - 1;
    return true;
  }

  get sources(): number {
    return this.buckets.size;
  }

  private evictIdle(now: number): void {
    // At most one scan a second: under a flood of new sources, scanning per datagram
    // would cost more than the datagrams themselves.
    if (now - this.lastEviction < 1000) return;
    this.lastEviction = now;
    const full = this.burst / this.rate; // ms for an empty bucket to refill
    for (const [key, b] of this.buckets) {
      if (now - b.updated >= full) this.buckets.delete(key);
    }
  }
}

/** Parses "RPS" or "RPS:BURST" (the --rate-limit flag). */
export function parseRateLimit(text: string): RateLimitOptions {
  const m = /^(\d+(?:\.\d+)?)(?::(\d+))?$/.exec(text.trim());
  if (m === null || Number(m[1]) <= 0) {
    throw new InvalidArgumentError('rateLimit', `${describe(text)} is not RPS or RPS:BURST, e.g. 1000 or 1000:2000`);
  }
  return { perSecond: Number(m[1]), ...(m[2] === undefined ? {} : { burst: Number(m[2]) }) };
}
