// What etcd itself says it served, read from its /metrics: every request (each unary call,
// and each message on a stream — a lease keepalive is one) and the latency of unary calls.
// Counted on etcd's side, so nothing a client forgets to count is missed; summed over every
// member of a cluster (each client request reaches one member).

export interface EtcdCounters {
  /** Requests received, gRPC health checks left out. */
  requests: number;
  /** Unary calls' latency histogram: upper bound (s) → cumulative count. */
  latency: Map<number, number>;
}

const LINE = /^(grpc_server_msg_received_total|grpc_server_handling_seconds_bucket)\{([^}]*)\} (\S+)$/;

export async function readEtcdCounters(metricsUrls: string[]): Promise<EtcdCounters> {
  const counters: EtcdCounters = { requests: 0, latency: new Map() };
  for (const url of metricsUrls) {
    const text = await (await fetch(url)).text();
    for (const line of text.split('\n')) {
      const m = LINE.exec(line);
      if (m === null) continue;
      const labels = m[2]!;
      if (labels.includes('grpc.health.v1.Health')) continue;
      const value = Number(m[3]);
      if (m[1] === 'grpc_server_msg_received_total') counters.requests += value;
      else if (labels.includes('grpc_type="unary"')) {
        const le = /le="([^"]+)"/.exec(labels)?.[1];
        const bound = le === '+Inf' ? Infinity : Number(le);
        counters.latency.set(bound, (counters.latency.get(bound) ?? 0) + value);
      }
    }
  }
  return counters;
}

/** Requests between two readings. */
export function requestsBetween(before: EtcdCounters, after: EtcdCounters): number {
  return after.requests - before.requests;
}

/** A latency quantile (s) of the unary calls between two readings: the upper bound of the bucket it falls in. */
export function latencyQuantile(before: EtcdCounters, after: EtcdCounters, q: number): number {
  const bounds = [...after.latency.keys()].sort((a, b) => a - b);
  const total = (after.latency.get(Infinity) ?? 0) - (before.latency.get(Infinity) ?? 0);
  if (total <= 0) return NaN;
  for (const bound of bounds) {
    const count = (after.latency.get(bound) ?? 0) - (before.latency.get(bound) ?? 0);
    if (count >= q * total) return bound;
  }
  return Infinity;
}
