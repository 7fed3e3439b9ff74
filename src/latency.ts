// A latency histogram kept as plain counts, so worker processes can send it to the primary
// and /metrics can print it as a Prometheus histogram.

export const LATENCY_BUCKETS_S = [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5];

export interface LatencySnapshot {
  /** Cumulative counts, one per bucket of LATENCY_BUCKETS_S. */
  buckets: number[];
  count: number;
  sum: number;
}

export class LatencyHistogram {
  private readonly counts = new Array<number>(LATENCY_BUCKETS_S.length).fill(0);
  private count = 0;
  private sum = 0;

  observe(seconds: number): void {
    this.count++;
    this.sum += seconds;
    for (let i = 0; i < LATENCY_BUCKETS_S.length; i++) if (seconds <= LATENCY_BUCKETS_S[i]!) this.counts[i]!++;
  }

  snapshot(): LatencySnapshot {
    return { buckets: [...this.counts], count: this.count, sum: this.sum };
  }
}
