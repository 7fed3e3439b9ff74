// With authentication on, a request is answered only if its client time is within a
// window of the server's clock and its nonce was not seen within that window. A
// replayed request cannot break uniqueness (the client drops a reply whose nonce is no
// longer outstanding), but it should not make the server send datagrams either.
//
// Memory is bounded: nonces live in two generations of at most `maxPerGeneration`
// entries; a generation is retired after one window (or when it is full).

export type ReplayVerdict = 'ok' | 'stale' | 'replayed';

export class ReplayGuard {
  private current = new Set<number>();
  private previous = new Set<number>();
  private rotatedAt: number;

  constructor(
    private readonly windowMs: number,
    private readonly maxPerGeneration = 1_000_000,
    now = Date.now(),
  ) {
    this.rotatedAt = now;
  }

  check(nonceHigh: number, nonceLow: number, clientTimeMs: number, now: number): ReplayVerdict {
    if (Math.abs(now - clientTimeMs) > this.windowMs) return 'stale';
    const age = now - this.rotatedAt;
    if (age >= 2 * this.windowMs) {
      // Idle for two windows: everything remembered is stale by now.
      this.previous = new Set();
      this.current = new Set();
      this.rotatedAt = now;
    } else if (age >= this.windowMs || this.current.size >= this.maxPerGeneration) {
      this.previous = this.current;
      this.current = new Set();
      this.rotatedAt = now;
    }
    // 53 bits of the nonce as an exact number key: a collision only makes a client retry.
    const key = (nonceHigh >>> 11) * 2 ** 32 + nonceLow;
    if (this.current.has(key) || this.previous.has(key)) return 'replayed';
    this.current.add(key);
    return 'ok';
  }
}
