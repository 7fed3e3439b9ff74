// What every serving process of `hailstone serve` shares: its configuration, its logger,
// starting its server (bound before the node opens), the ready line, and its snapshot
// for /metrics and /healthz.

import { destination, pino, type Logger } from 'pino';
import { hostPort } from '../address.js';
import { type HailstoneError, InvalidArgumentError } from '../errors.js';
import type { ClaimRef } from '../fleet/etcd-store.js';
import type { FleetMember } from '../fleet/member.js';
import type { EtcdOptions } from '../fleet/etcd.js';
import type { ReservationLink } from '../fleet/node-reservation.js';
import type { Backend } from '../generator.js';
import type { StartupWait } from '../node/options.js';
import { type NodeSource, localNodeSource } from '../node/source.js';
import { type HttpIdServer, serveHttp } from '../server/http-server.js';
import type { NodeSnapshot, WorkerSnapshot } from '../server/health.js';
import { METRICS_PATHS, type MetricsServer, metricsHandler, serveMetrics } from '../server/metrics.js';
import type { RateLimitOptions } from '../server/rate-limit.js';
import type { TransportChoice } from '../server/select-transport.js';
import type { LocalServeOptions } from '../serve.js';
import { type ServeCommonOptions, type Server, startServer } from '../server/server.js';
import { LiveNode } from '../server/live-node.js';
import { UsageError, detailOf, usageErrorOf } from './failure.js';

export interface ServeConfig {
  /** Undefined in fleet mode without --node-id: claim a free one. */
  nodeId: number | undefined;
  host: string;
  port: number;
  /** Undefined in fleet mode without --state-dir. */
  stateDir: string | undefined;
  workers: number;
  /** False with --no-udp: ids over HTTP alone, no UDP port bound. */
  udp: boolean;
  transport: TransportChoice;
  keys: Uint8Array[];
  /** Key files (and the etcd password file) others may read, and why that matters: logged once, by the process that starts the server. */
  keyFileWarnings: { keyFile: string; message: string }[];
  allow: string[];
  rateLimit: RateLimitOptions | undefined;
  metrics: { host: string; port: number } | undefined;
  /** --http: where to serve ids over HTTP, and its limits; undefined: off. */
  http?: { host: string; port: number; tokens: string[]; maxConnections: number; headersTimeoutMs: number; requestTimeoutMs: number } | undefined;
  logLevel: string;
  backend: Backend;
  maxLeadMs: number;
  reservationMs: number | undefined; // undefined: the node's default
  maxStartupWaitMs: number;
  replayWindowMs: number;
  clockSkewMs: number;
  resetState: boolean;
  /** Fleet mode: etcd's endpoints, TLS files and user (undefined: local mode). */
  etcd: EtcdOptions | undefined;
  cluster: string;
  /** Fleet mode: the UDP address for the claim (--advertise). */
  advertise?: string;
  claimWaitMs: number;
  leaseTtlS: number;
  etcdWaitMs: number;
  /** A worker of a fleet server: the primary's claim, which it writes under. */
  fleetClaim?: ClaimRef;
  /** A worker of a fleet server: the node's reservation under a claim, kept by the primary. */
  reservationLink?: (claim: ClaimRef) => ReservationLink;
}

/** Logs what is wrong with the key files (mode): once per server, not once per worker. */
export function warnAboutKeyFiles(config: ServeConfig, logger: Logger): void {
  for (const { keyFile, message } of config.keyFileWarnings) logger.warn({ keyFile }, message);
}

/** JSON lines on stderr; stdout carries only the ready and stopped lines. */
export function makeLogger(config: ServeConfig, worker?: number): Logger {
  // Every line says which node and worker it comes from. A mixin, not pino's base bindings:
  // the node's own lines carry nodeId and worker too, and a mixin's keys give way to the
  // caller's where bindings would repeat them in the line.
  const fixed = { ...(config.nodeId === undefined ? {} : { nodeId: config.nodeId }), ...(worker === undefined ? {} : { worker }) };
  return pino({ level: config.logLevel, mixin: () => ({ ...fixed }) }, destination({ fd: 2, sync: true }));
}

/**
 * One serving process: its node (from prepare() on), and the front ends that answer from it
 * — the UDP server (unless --no-udp) and, with --http, the HTTP one (startHttp).
 */
export class ServingProcess {
  /** The node this process serves, from prepare() on; opened by start(). */
  live: LiveNode | undefined;
  /** The UDP server, once its socket is bound (never with --no-udp). */
  server: Server | undefined;
  /** Set once the node is open and ids are served. */
  ready = false;
  /** Fleet mode: the membership that claims this server's node id (a worker adopts its primary's new claims through it). */
  fleetMember: () => FleetMember | undefined = () => undefined;
  private wait: StartupWait | undefined;
  /** The node id it was started with, if one was given (for /metrics and /healthz before the node is open). */
  private nodeId: number | undefined;
  private common: (ServeCommonOptions & { logger: Logger }) | undefined;
  private udp = true;

  constructor(readonly index: number) {}

  snapshot(): WorkerSnapshot | undefined {
    const live = this.live;
    // Nothing to report before a front end is bound.
    if (live === undefined || (this.udp && this.server === undefined)) return undefined;
    const stats = this.server?.stats();
    const node = live.node();
    if (this.ready && node !== undefined) return { index: this.index, ...(stats === undefined ? {} : { stats }), node: node.status() };
    // Bound, but the node is still opening.
    const retryAfterMs = this.wait === undefined ? undefined : Math.max(0, this.wait.untilMs - Date.now());
    const reason =
      this.wait === undefined
        ? 'opening the node'
        : this.wait.reason === 'first start'
          ? `first start: waiting one lead window (${this.wait.waitMs} ms) before issuing`
          : `waiting for the clock to reach the stored reservation (${this.wait.waitMs} ms)`;
    return {
      index: this.index,
      ...(stats === undefined ? {} : { stats }),
      node: undefined,
      ...(this.nodeId === undefined ? {} : { nodeId: this.nodeId }),
      starting: { reason, retryAfterMs },
    };
  }

  /**
   * Makes this process's node source — the whole node, or one worker's stripe of it — and
   * opens nothing yet, so the front ends can be bound in front of it first.
   */
  async prepare(config: ServeConfig, worker: { index: number; count: number }, logger: Logger): Promise<LiveNode> {
    this.nodeId = config.fleetClaim?.nodeId ?? config.nodeId;
    this.udp = config.udp;
    try {
      const common = {
        host: config.host,
        port: config.port,
        transport: config.transport,
        // Native workers each bind the port themselves; dgram workers share the primary's socket.
        reusePort: worker.count > 1,
        worker,
        backend: config.backend,
        maxLeadMs: config.maxLeadMs,
        reservationMs: config.reservationMs,
        maxStartupWaitMs: config.maxStartupWaitMs,
        clockSkewMs: config.clockSkewMs,
        resetState: config.resetState,
        replayWindowMs: config.replayWindowMs,
        allow: config.allow,
        logger,
        keys: config.keys,
        ...(config.rateLimit === undefined ? {} : { rateLimit: config.rateLimit }),
        onStartupWait: (wait: StartupWait) => {
          this.wait = wait;
        },
      } satisfies Partial<LocalServeOptions>;
      this.common = common;
      // The CLI composes the front ends with their node source, as serve() does for the
      // library; it keeps the fleet source, whose member a worker needs when its primary claims again.
      let source: NodeSource;
      if (config.etcd === undefined) {
        source = localNodeSource({ ...common, nodeId: config.nodeId ?? 0, stateDir: config.stateDir ?? './data' });
      } else {
        const { FleetNodeSource } = await import('../fleet/source.js');
        const fleet = new FleetNodeSource({
          ...common,
          ...(config.nodeId === undefined ? {} : { nodeId: config.nodeId }),
          ...(config.stateDir === undefined ? {} : { stateDir: config.stateDir }),
          ...(config.fleetClaim === undefined ? {} : { fleetClaim: config.fleetClaim }),
          ...(config.reservationLink === undefined ? {} : { reservationLink: config.reservationLink }),
          etcd: config.etcd,
          cluster: config.cluster,
          ...(config.advertise === undefined ? {} : { advertise: config.advertise }),
          claimWaitMs: config.claimWaitMs,
          leaseTtlS: config.leaseTtlS,
          coordinatorWaitMs: config.etcdWaitMs,
        });
        this.fleetMember = () => fleet.member;
        source = fleet;
      }
      this.live = new LiveNode(source);
      return this.live;
    } catch (error) {
      if (error instanceof InvalidArgumentError) throw usageErrorOf(error);
      throw error;
    }
  }

  /**
   * Binds the UDP port (unless --no-udp: HTTP alone answers) and opens the node; resolves
   * when ids are served. After prepare().
   */
  async start(onBound?: (address: { host: string; port: number }) => void): Promise<void> {
    const live = this.live;
    const common = this.common;
    if (live === undefined || common === undefined) throw new Error('ServingProcess.start() before prepare()');
    try {
      if (this.udp) {
        await startServer(
          {
            ...common,
            onListening: (server) => {
              this.server = server;
              common.logger.info({ address: server.address }, 'socket bound; opening the node');
              onBound?.(server.address);
            },
          },
          live,
        );
      } else {
        // No UDP address for a fleet claim to name: clients find this server by its HTTP address.
        await live.start({ logger: common.logger, address: () => '', onStartupWait: common.onStartupWait });
      }
      this.ready = true;
    } catch (error) {
      if (!this.udp) await live.close();
      if (error instanceof InvalidArgumentError) throw usageErrorOf(error);
      throw error;
    }
  }

  /** The node id served (once ready). */
  servedNodeId(): number | undefined {
    return this.live?.node()?.status().nodeId;
  }

  /** Settles only if the node can no longer be served and will not recover by itself. */
  get failed(): Promise<HailstoneError> {
    return this.live?.failed ?? new Promise(() => undefined);
  }

  /** Closes the UDP server (which closes the node), or the node alone. */
  async close(): Promise<void> {
    if (this.server !== undefined) await this.server.close();
    else await this.live?.close();
  }
}

export function readyLine(config: ServeConfig, host: string, port: number, transport: string, nodeId = config.nodeId): string {
  return `hailstone listening on udp://${hostPort(host, port)} node=${nodeId} workers=${config.workers} transport=${transport}\n`;
}

/** --no-udp's ready line: ids are served over HTTP alone, at the address the "listening on http://" line named. */
export function httpOnlyReadyLine(config: ServeConfig, nodeId: number | undefined): string {
  return `hailstone serving over http only node=${nodeId} workers=${config.workers}\n`;
}

/** Calls `stop` on the first SIGTERM or SIGINT. */
export function onStopSignal(stop: () => void): void {
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

export async function startMetrics(config: ServeConfig, snapshot: () => Promise<NodeSnapshot>, logger: Logger): Promise<MetricsServer | undefined> {
  if (config.metrics === undefined) return undefined;
  const metrics = await serveMetrics(config.metrics.host, config.metrics.port, snapshot);
  logger.info({ metrics: `http://${hostPort(metrics.address.host, metrics.address.port)}` }, 'metrics and health served over HTTP');
  return metrics;
}

/** Writes to stdout; a reader that went away (`serve | head -1`) must never crash the server. */
export function say(text: string): void {
  try {
    process.stdout.write(text);
  } catch {
    // EPIPE and the like: nobody is listening.
  }
}

/**
 * Serves ids over HTTP (--http) from the process's node — the same one UDP answers from —
 * answering 503 while it starts. With `metrics`, /metrics and /healthz too. After prepare().
 */
export async function startHttp(config: ServeConfig, proc: ServingProcess, logger: Logger, metrics?: () => Promise<NodeSnapshot>, options: { announce?: boolean } = {}): Promise<HttpIdServer | undefined> {
  const http = config.http;
  if (http === undefined) return undefined;
  if (proc.live === undefined) throw new Error('startHttp() before prepare()');
  try {
    const server = await serveHttp({
      source: proc.live,
      host: http.host,
      port: http.port,
      tokens: http.tokens,
      allow: config.allow,
      ...(config.rateLimit === undefined ? {} : { rateLimit: config.rateLimit }),
      maxConnections: http.maxConnections,
      headersTimeoutMs: http.headersTimeoutMs,
      requestTimeoutMs: http.requestTimeoutMs,
      ...(metrics === undefined ? {} : { extra: { paths: METRICS_PATHS, handle: metricsHandler(metrics) } }),
      // One process: it holds the HTTP port's guard itself; a worker's primary holds it for all of them.
      ...(config.workers === 1 ? { guard: { nodeId: proc.live.nodeId, workers: 1 } } : {}),
      logger,
    });
    const url = `http://${hostPort(server.address.host, server.address.port)}`;
    logger.info({ http: url, tokens: http.tokens.length, metrics: metrics !== undefined }, metrics === undefined ? 'ids served over HTTP' : 'ids, metrics and health served over HTTP');
    // A worker of --workers N leaves the line to the primary: one line for the port they share.
    if (options.announce !== false) say(`hailstone listening on ${url}\n`);
    return server;
  } catch (error) {
    if (error instanceof InvalidArgumentError) throw error.argument === 'host' ? new UsageError(`--http: ${detailOf(error)}`) : usageErrorOf(error);
    throw error;
  }
}
