// Metrics and health over HTTP, off by default (`--metrics HOST:PORT`). What is healthy is
// health.ts's; this file renders snapshots as metrics and serves both.
//
//   GET /metrics   Prometheus text format (prom-client, the standard client)
//   GET /healthz   200 while every worker holds its state lock and its reservation is
//                  durable and ahead of the clock; 503 with the reason otherwise
//
// The hot path keeps plain number counters (ServerStats, NodeStatus); prom-client reads
// them only when scraped, so serving ids pays nothing for metrics.

import { type IncomingMessage, type ServerResponse, createServer, type Server as HttpServer } from 'node:http';
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import { listenHttp } from './http-listen.js';
import { LATENCY_BUCKETS_S, type LatencySnapshot, histogramSamples } from '../latency.js';
import type { NodeStatus } from '../node/node.js';
import type { FleetStats } from '../node/source.js';
import { isListenPort } from '../address.js';
import { VERSION } from '../version.js';
import { type NodeSnapshot, type WorkerSnapshot, healthOf, nodeIdOf } from './health.js';
import { httpMetricsText } from './http-metrics.js';

function sum(snapshot: NodeSnapshot, f: (w: WorkerSnapshot) => number): number {
  return snapshot.workers.reduce((a, w) => a + f(w), 0);
}

function nodes(snapshot: NodeSnapshot): NodeStatus[] {
  return snapshot.workers.flatMap((w) => (w.node === undefined ? [] : [w.node]));
}

function sumNodes(snapshot: NodeSnapshot, f: (n: NodeStatus) => number): number {
  return nodes(snapshot).reduce((a, n) => a + f(n), 0);
}

/**
 * A registry whose metrics read `current()` when collected. The caller takes one snapshot
 * per scrape before collecting (prom-client collects metrics concurrently). Fleet metrics
 * are not in it: see fleetRegistry.
 */
export function metricsRegistry(current: () => NodeSnapshot): Registry {
  const registry = new Registry();
  // Unprefixed: process_* and nodejs_* are the names every Node.js dashboard and alert expects.
  collectDefaultMetrics({ register: registry });

  const counter = (name: string, help: string, labelNames: string[], read: (s: NodeSnapshot) => Record<string, number> | number) =>
    new Counter({
      name,
      help,
      labelNames,
      registers: [registry],
      collect() {
        this.reset();
        const v = read(current());
        if (typeof v === 'number') this.inc(v);
        else for (const [label, n] of Object.entries(v)) this.inc({ [labelNames[0]!]: label }, n);
      },
    });
  const gauge = (name: string, help: string, read: (s: NodeSnapshot) => number) =>
    new Gauge({
      name,
      help,
      registers: [registry],
      collect() {
        this.set(read(current()));
      },
    });

  counter('hailstone_requests_total', 'Valid requests received (after allowlist, authentication and rate limiting)', [], (s) => sum(s, (w) => w.stats?.requests ?? 0));
  counter('hailstone_ids_served_total', 'Ids sent in OK replies', [], (s) => sum(s, (w) => w.stats?.idsServed ?? 0));
  counter('hailstone_replies_total', 'Replies sent, by status', ['status'], (s) => ({
    ok: sum(s, (w) => w.stats?.replies.ok ?? 0),
    unavailable: sum(s, (w) => w.stats?.replies.unavailable ?? 0),
    bad_request: sum(s, (w) => w.stats?.replies.badRequest ?? 0),
  }));
  counter('hailstone_dropped_total', 'Datagrams dropped without a reply, by reason', ['reason'], (s) => {
    const out: Record<string, number> = {};
    for (const w of s.workers) for (const [reason, n] of Object.entries(w.stats?.dropped ?? {})) out[reason] = (out[reason] ?? 0) + n;
    return out;
  });
  counter('hailstone_reply_send_failures_total', 'Replies the kernel refused to send (full send buffer, unreachable): the client retries', [], (s) =>
    sum(s, (w) => w.stats?.transport.sendFailures ?? 0),
  );
  counter('hailstone_receive_errors_total', 'Receive calls the kernel failed (other than no data yet)', [], (s) => sum(s, (w) => w.stats?.transport.receiveErrors ?? 0));
  counter('hailstone_receive_batches_total', 'Receive calls into the server: one per datagram with dgram, one per recvmmsg batch with native', [], (s) =>
    sum(s, (w) => w.stats?.transport.batches ?? 0),
  );
  new Gauge({
    name: 'hailstone_transport_info',
    help: 'The UDP transport each worker uses (1 per worker)',
    labelNames: ['transport'],
    registers: [registry],
    collect() {
      this.reset();
      // A worker without UDP (--no-udp) has no transport.
      for (const w of current().workers) if (w.stats !== undefined) this.inc({ transport: w.stats.transport.name });
    },
  });
  counter(
    'hailstone_refusals_total',
    'UNAVAILABLE answers by reason: reservation (a renewal was late while nothing failed: never expected), slow_storage (writes slower than the lead can cover), storage, coordinator, ownership, clock_behind, clock, closed, starting',
    ['reason'],
    (s) => {
      const out: Record<string, number> = { reservation: 0, slow_storage: 0, storage: 0, coordinator: 0, ownership: 0, clock_behind: 0, clock: 0, closed: 0, starting: 0 };
      for (const w of s.workers) {
        out.starting! += w.stats?.replies.unavailableStarting ?? 0;
        for (const [reason, n] of Object.entries(w.node?.refusals ?? {})) out[reason] = (out[reason] ?? 0) + n;
      }
      return out;
    },
  );
  counter('hailstone_clock_regressions_total', 'Episodes of the clock reading earlier than before', [], (s) => sumNodes(s, (n) => n.generator.clockRegressions));
  counter('hailstone_sequence_exhaustions_total', 'Refusals because demand outran the layout and the lead', [], (s) => sumNodes(s, (n) => n.generator.sequenceExhaustions));
  counter('hailstone_storage_errors_total', 'Failed writes of the durable reservation', [], (s) => sumNodes(s, (n) => n.storageErrors));
  counter('hailstone_reservation_renewals_total', 'Durable reservation renewals', [], (s) => sumNodes(s, (n) => n.renewals));
  counter('hailstone_worker_restarts_total', 'Worker processes restarted after they died', [], (s) => s.workerRestarts);
  gauge('hailstone_ownership_lost', 'Workers that lost their state lock (or claim) and stopped issuing for good', (s) =>
    nodes(s).filter((n) => n.ownershipLost !== undefined).length,
  );
  gauge('hailstone_clock_lead_seconds', 'How far logical time runs ahead of the wall clock (the largest among workers)', (s) =>
    Math.max(0, ...nodes(s).map((n) => n.clockLeadMs)) / 1000,
  );
  gauge('hailstone_reservation_remaining_seconds', 'How far the durable reservation reaches past the clock (the smallest among workers)', (s) =>
    nodes(s).length === 0 ? 0 : Math.min(...nodes(s).map((n) => n.reservationRemainingMs)) / 1000,
  );
  gauge('hailstone_workers', 'Worker processes serving', (s) => s.workers.length);
  gauge('hailstone_healthy', '1 while /healthz answers 200', (s) => (healthOf(s).healthy ? 1 : 0));
  new Gauge({
    name: 'hailstone_node_info',
    help: 'The node id each worker runs, its cluster (fleet mode) and whether its node id is set locally or claimed in etcd (1 per worker)',
    labelNames: ['node_id', 'worker', 'cluster', 'mode'],
    registers: [registry],
    collect() {
      this.reset();
      const s = current();
      const cluster = s.fleet?.cluster ?? '';
      const mode = s.fleet === undefined ? 'local' : 'fleet';
      for (const w of s.workers) this.set({ node_id: String(nodeIdOf(s, w) ?? ''), worker: String(w.index), cluster, mode }, 1);
    },
  });
  new Gauge({ name: 'hailstone_build_info', help: 'The hailstone version running', labelNames: ['version'], registers: [registry] }).set({ version: VERSION }, 1);
  return registry;
}

/**
 * Fleet mode's metrics, made from one scrape's figures. Built anew for each scrape so that
 * local mode exports none of them and a figure not known now (the node id while claiming)
 * is absent rather than 0.
 */
export function fleetRegistry(f: FleetStats): Registry {
  const registry = new Registry();
  const gauge = (name: string, help: string, value: number | undefined) => {
    if (value !== undefined) new Gauge({ name, help, registers: [registry] }).set(value);
  };
  const counter = (name: string, help: string, value: number) => new Counter({ name, help, registers: [registry] }).inc(value);
  gauge('hailstone_fleet_node_id', 'The node id claimed in etcd (absent while claiming)', f.nodeId);
  counter('hailstone_fleet_claims_total', 'Node ids claimed in etcd (more than 1: re-claimed after fencing)', f.claims);
  counter('hailstone_fleet_fences_total', 'Times the claim was lost and issuing stopped at once', f.fences);
  counter('hailstone_fleet_lease_renewals_total', 'Lease keepalives confirmed by etcd', f.renewals);
  counter('hailstone_fleet_lease_renewal_failures_total', 'Lease keepalives that failed', f.renewalFailures);
  gauge(
    'hailstone_fleet_lease_keepalive_age_seconds',
    'Time since the last confirmed keepalive was sent (fenced at TTL minus a margin)',
    f.sinceKeepaliveMs === undefined ? undefined : f.sinceKeepaliveMs / 1000,
  );
  gauge('hailstone_fleet_lease_ttl_seconds', 'The lease TTL', f.leaseTtlS);
  const up = new Gauge({ name: 'hailstone_etcd_endpoint_up', help: 'Each etcd endpoint: 1 while it answers, 0 while requests pass it over after it failed or stalled', labelNames: ['endpoint'], registers: [registry] });
  for (const [endpoint, answering] of Object.entries(f.endpoints)) up.set({ endpoint }, answering ? 1 : 0);
  return registry;
}

/** The whole /metrics text for one snapshot: the common metrics, then fleet mode's. */
export async function metricsText(registry: Registry, snapshot: NodeSnapshot): Promise<string> {
  const common = (await registry.metrics()) + reservationWritesText(snapshot) + (snapshot.http === undefined ? '' : httpMetricsText(snapshot.http));
  if (snapshot.fleet === undefined) return common;
  return common + (await fleetRegistry(snapshot.fleet).metrics()) + latencyHistogramText(snapshot.fleet);
}

/** Every worker's reservation write latency, summed into one histogram (file store and etcd alike). */
function reservationWritesText(snapshot: NodeSnapshot): string {
  const total: LatencySnapshot = { buckets: LATENCY_BUCKETS_S.map(() => 0), count: 0, sum: 0 };
  for (const n of nodes(snapshot)) {
    n.reservationWrites.buckets.forEach((c, i) => (total.buckets[i]! += c));
    total.count += n.reservationWrites.count;
    total.sum += n.reservationWrites.sum;
  }
  return histogramText('hailstone_reservation_write_duration_seconds', 'How long durable reservation renewals took (fsyncs, or an etcd transaction)', total);
}

export interface MetricsServer {
  readonly address: { host: string; port: number };
  close(): Promise<void>;
}

/** The paths metricsHandler answers. */
export const METRICS_PATHS = ['/metrics', '/healthz'] as const;

/** Answers GET (and HEAD) /metrics and /healthz (404 otherwise): for serveMetrics, or an HTTP server that serves ids too. */
export function metricsHandler(snapshot: () => Promise<NodeSnapshot>): (req: IncomingMessage, res: ServerResponse) => void {
  let latest: NodeSnapshot = { workers: [], workerRestarts: 0, expectedWorkers: 0 };
  const registry = metricsRegistry(() => latest);
  return (req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    // HEAD as GET (node:http sends no body for it): load balancers probe /healthz with either.
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' }).end();
      return;
    }
    if (path === '/metrics') {
      snapshot()
        .then((s) => {
          latest = s;
          return metricsText(registry, s);
        })
        .then(
        (text) => res.writeHead(200, { 'content-type': registry.contentType }).end(text),
        (error: unknown) => res.writeHead(500, { 'content-type': 'text/plain' }).end(`metrics failed: ${String(error)}\n`),
      );
      return;
    }
    if (path === '/healthz') {
      snapshot().then(
        (s) => {
          const health = healthOf(s);
          const body = {
            status: health.healthy ? 'ok' : 'unhealthy',
            ...(health.nodeId === undefined ? {} : { nodeId: health.nodeId }),
            ...(health.reason === undefined ? {} : { reason: health.reason }),
            ...(health.retryAfterMs === undefined ? {} : { retryAfterMs: health.retryAfterMs }),
          };
          const headers: Record<string, string> = { 'content-type': 'application/json' };
          if (health.retryAfterMs !== undefined) headers['retry-after'] = String(Math.ceil(health.retryAfterMs / 1000));
          res.writeHead(health.healthy ? 200 : 503, headers).end(`${JSON.stringify(body)}\n`);
        },
        (error: unknown) => res.writeHead(503, { 'content-type': 'application/json' }).end(`${JSON.stringify({ status: 'unhealthy', reason: String(error) })}\n`),
      );
      return;
    }
    res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: try /metrics or /healthz\n');
  };
}

/** Serves /metrics and /healthz. Binds the given address (127.0.0.1 unless asked). */
export async function serveMetrics(host: string, port: number, snapshot: () => Promise<NodeSnapshot>): Promise<MetricsServer> {
  const http: HttpServer = createServer(metricsHandler(snapshot));
  const address = await listenHttp(http, host, port, { code: 'METRICS_PORT_IN_USE', name: 'metrics', flag: '--metrics', afterListening: () => undefined });
  return {
    address,
    close: () => new Promise((resolve) => http.close(() => resolve())),
  };
}

/** Parses "HOST:PORT" or "PORT" (loopback) for --metrics. */
export function parseListenAddress(text: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d+)$/.exec(text) ?? /^()()(\d+)$/.exec(text);
  const port = m === null ? NaN : Number(m[3]);
  if (m === null || !isListenPort(port)) {
    throw new Error(`${JSON.stringify(text)} is not HOST:PORT or PORT`);
  }
  return { host: m[1] || m[2] || '127.0.0.1', port };
}

/** The etcd latency histogram in Prometheus text format (kept as counts by the fleet member). */
function latencyHistogramText(fleet: FleetStats): string {
  return histogramText('hailstone_etcd_request_duration_seconds', 'etcd request latency (claims, keepalives, reservation writes)', fleet.etcdLatency);
}

function histogramText(name: string, help: string, h: LatencySnapshot): string {
  return `${[`# HELP ${name} ${help}`, `# TYPE ${name} histogram`, ...histogramSamples(name, h)].join('\n')}\n`;
}
