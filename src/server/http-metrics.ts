// What the HTTP front end counts, kept as plain numbers on the hot path and printed in
// Prometheus text format only when /metrics is scraped.

import { LatencyHistogram, type LatencySnapshot, histogramSamples } from '../latency.js';
import type { RouteLabel } from './http-routes.js';

/** Id requests take tens of microseconds: buckets from 100 µs, unlike the storage histograms. */
export const HTTP_LATENCY_BUCKETS_S = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1];

/** One id route's latency: cumulative counts, one per bucket of HTTP_LATENCY_BUCKETS_S. */
export type HttpLatency = LatencySnapshot;

export interface HttpStats {
  /** Answers by route and status: requests[route][status] = n. */
  requests: Partial<Record<RouteLabel, Record<string, number>>>;
  /** How long the id routes took, from the request's headers to the end of the answer. */
  latency: Partial<Record<'/v1/ids' | '/v1/id', HttpLatency>>;
  idsServed: number;
  /** Connections closed before a request was read: source not allowed, too many open. */
  connectionsDropped: { not_allowed: number; max_connections: number };
}

export class HttpCounters {
  private readonly requests: Partial<Record<RouteLabel, Record<string, number>>> = {};
  private readonly latency: Partial<Record<'/v1/ids' | '/v1/id', LatencyHistogram>> = {};
  idsServed = 0;
  readonly connectionsDropped = { not_allowed: 0, max_connections: 0 };

  answered(route: RouteLabel, status: number): void {
    const byStatus = (this.requests[route] ??= {});
    byStatus[status] = (byStatus[status] ?? 0) + 1;
  }

  observe(route: '/v1/ids' | '/v1/id', seconds: number): void {
    (this.latency[route] ??= new LatencyHistogram(HTTP_LATENCY_BUCKETS_S)).observe(seconds);
  }

  snapshot(): HttpStats {
    const requests: HttpStats['requests'] = {};
    for (const [route, byStatus] of Object.entries(this.requests)) requests[route as RouteLabel] = { ...byStatus };
    const latency: HttpStats['latency'] = {};
    for (const [route, h] of Object.entries(this.latency)) latency[route as '/v1/id'] = h.snapshot();
    return { requests, latency, idsServed: this.idsServed, connectionsDropped: { ...this.connectionsDropped } };
  }
}

/** Several HTTP servers' counters as one (the workers of one server, all on one port). */
export function mergeHttpStats(all: HttpStats[]): HttpStats {
  const total: HttpStats = { requests: {}, latency: {}, idsServed: 0, connectionsDropped: { not_allowed: 0, max_connections: 0 } };
  for (const s of all) {
    for (const [route, byStatus] of Object.entries(s.requests)) {
      const into = (total.requests[route as RouteLabel] ??= {});
      for (const [status, n] of Object.entries(byStatus)) into[status] = (into[status] ?? 0) + n;
    }
    for (const [route, h] of Object.entries(s.latency)) {
      const into = total.latency[route as '/v1/id'];
      total.latency[route as '/v1/id'] =
        into === undefined ? { buckets: [...h.buckets], count: h.count, sum: h.sum } : { buckets: into.buckets.map((b, i) => b + (h.buckets[i] ?? 0)), count: into.count + h.count, sum: into.sum + h.sum };
    }
    total.idsServed += s.idsServed;
    total.connectionsDropped.not_allowed += s.connectionsDropped.not_allowed;
    total.connectionsDropped.max_connections += s.connectionsDropped.max_connections;
  }
  return total;
}

/** The HTTP metrics in Prometheus text format. */
export function httpMetricsText(s: HttpStats): string {
  const lines: string[] = [];
  lines.push('# HELP hailstone_http_requests_total HTTP requests answered, by route and status', '# TYPE hailstone_http_requests_total counter');
  for (const [route, byStatus] of Object.entries(s.requests)) {
    for (const [status, n] of Object.entries(byStatus)) lines.push(`hailstone_http_requests_total{route="${route}",status="${status}"} ${n}`);
  }
  lines.push('# HELP hailstone_http_ids_served_total Ids sent in HTTP answers', '# TYPE hailstone_http_ids_served_total counter', `hailstone_http_ids_served_total ${s.idsServed}`);
  lines.push(
    '# HELP hailstone_http_connections_dropped_total HTTP connections closed before a request was read, by reason',
    '# TYPE hailstone_http_connections_dropped_total counter',
  );
  for (const [reason, n] of Object.entries(s.connectionsDropped)) lines.push(`hailstone_http_connections_dropped_total{reason="${reason}"} ${n}`);
  const name = 'hailstone_http_request_duration_seconds';
  lines.push(`# HELP ${name} How long the id routes took to answer, from the request's headers to the answer's end`, `# TYPE ${name} histogram`);
  for (const [route, h] of Object.entries(s.latency)) lines.push(...histogramSamples(name, h, HTTP_LATENCY_BUCKETS_S, `route="${route}"`));
  return `${lines.join('\n')}\n`;
}
