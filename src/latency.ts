// A latency histogram kept as plain counts, so worker processes can send it to the primary
// and /metrics can print it as a Prometheus histogram.

export const LATENCY_BUCKETS_S = [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5];

export interface LatencySnapshot {
  /** Cumulative counts, one per bucket (LATENCY_BUCKETS_S unless the histogram was given others). */
  buckets: number[];
  count: number;
  sum: number;
}

export class LatencyHistogram {
  private readonly counts: number[];
  private count = 0;
  private sum = 0;

  /** Upper bounds of the buckets, seconds, ascending. */
  constructor(private readonly bucketsS: readonly number[] = LATENCY_BUCKETS_S) {
    this.counts = new Array<number>(bucketsS.length).fill(0);
  }

  observe(seconds: number): void {
    this.count++;
    this.sum += seconds;
    for (let i = 0; i < this.bucketsS.length; i++) if (seconds <= this.bucketsS[i]!) this.counts[i]!++;
  }

  snapshot(): LatencySnapshot {
    return { buckets: [...this.counts], count: this.count, sum: this.sum };
  }
}

/**
 * One histogram's samples in Prometheus text format: the cumulative buckets, +Inf, sum and
 * count, each with `labels` ('route="/v1/id"') when given.
 */
export function histogramSamples(name: string, h: LatencySnapshot, bucketsS: readonly number[] = LATENCY_BUCKETS_S, labels = ''): string[] {
  const before = labels === '' ? '' : `${labels},`;
  const only = labels === '' ? '' : `{${labels}}`;
  return [...bucketsS.map((le, i) => `${name}_bucket{${before}le="${le}"} ${h.buckets[i]}`), `${name}_bucket{${before}le="+Inf"} ${h.count}`, `${name}_sum${only} ${h.sum}`, `${name}_count${only} ${h.count}`];
}
