// hailstone serve: one node of the id service, in one process or N worker processes.
//
// With --workers N, a primary process forks N workers with node:cluster. Each owns its own
// stripe of the node's sequence space and its own durable reservation, so their ids never
// collide. With the dgram transport they share one UDP socket (Node 20's dgram has no
// SO_REUSEPORT; cluster hands every worker the same handle). With the native transport
// each worker binds its own socket to the one port with SO_REUSEPORT and the kernel
// spreads clients across them (by source address and port). A worker that dies is
// restarted with the same stripe; its reservation makes that safe.

import cluster, { type Worker } from 'node:cluster';
import { parseArgs } from 'node:util';
import { destination, pino, type Logger } from 'pino';
import { InvalidArgumentError } from '../errors.js';
import type { Backend } from '../generator.js';
import { type MetricsServer, type NodeSnapshot, type WorkerSnapshot, parseListenAddress, serveMetrics } from '../server/metrics.js';
import { type RateLimitOptions, parseRateLimit } from '../server/rate-limit.js';
import { TRANSPORT_CHOICES, type TransportChoice, resolveTransport } from '../server/select-transport.js';
import { DEFAULT_HOST, DEFAULT_PORT, DEFAULT_REPLAY_WINDOW_MS, type Server, serve } from '../server/server.js';
import { UsageError, choiceOption, envOr, intOption, listOption, readKeyFile } from './args.js';

export const SERVE_HELP = `Usage: hailstone serve [options]

Serves ids over UDP (protocol v1) from one node. Every option can also be set with the
environment variable named after it.

  --node-id N              this node's id, 0..1023; unique among live nodes   HAILSTONE_NODE_ID (default 0)
  --host ADDR              address to bind (never all interfaces unless asked) HAILSTONE_HOST (${DEFAULT_HOST})
  --port P                 UDP port; 0 picks a free one                      HAILSTONE_PORT (${DEFAULT_PORT})
  --state-dir DIR          durable state, on local storage                    HAILSTONE_STATE_DIR (./data)
  --workers N              worker processes sharing the port                  HAILSTONE_WORKERS (1)
  --transport T            auto, native (batched recvmmsg/sendmmsg) or dgram  HAILSTONE_TRANSPORT (auto:
                           native where its addon loads, else dgram)
  --key-file F             shared key: requests must be authenticated;        HAILSTONE_KEY_FILE
                           repeat to accept several keys while rotating
  --allow CIDR[,CIDR]      source networks allowed to ask (repeatable)        HAILSTONE_ALLOW (everyone)
  --rate-limit RPS[:BURST] per-source token bucket; excess is dropped         HAILSTONE_RATE_LIMIT (off)
  --metrics [HOST:]PORT    serve /metrics and /healthz over HTTP              HAILSTONE_METRICS (off)
  --log-level LEVEL        fatal, error, warn, info, debug, trace, silent     HAILSTONE_LOG_LEVEL (info)
  --backend wasm|ts        generator core                                     HAILSTONE_BACKEND (wasm)
  --max-lead-ms MS         how far ids may run ahead of the clock             HAILSTONE_MAX_LEAD_MS (2000)
  --reservation-ms MS      how far each durable reservation reaches           HAILSTONE_RESERVATION_MS (1000)
  --max-startup-wait-ms MS wait this long for a clock behind the state        HAILSTONE_MAX_STARTUP_WAIT_MS (0)
  --replay-window-ms MS    with a key: accepted request age                   HAILSTONE_REPLAY_WINDOW_MS (${DEFAULT_REPLAY_WINDOW_MS})
  --clock-skew-ms MS       shift the clock (drills: rehearse clock steps)     HAILSTONE_CLOCK_SKEW_MS (0)
  --reset-state            start over from a damaged state file (first start)
  -h, --help               this text

Prints "hailstone listening on udp://HOST:PORT node=N workers=W" on stdout when ready; logs
are JSON lines on stderr. SIGTERM or SIGINT: stops receiving, releases the state lock and
exits 0.
`;

interface ServeConfig {
  nodeId: number;
  host: string;
  port: number;
  stateDir: string;
  workers: number;
  transport: TransportChoice;
  keys: Uint8Array[];
  allow: string[];
  rateLimit: RateLimitOptions | undefined;
  metrics: { host: string; port: number } | undefined;
  logLevel: string;
  backend: Backend;
  maxLeadMs: number;
  reservationMs: number;
  maxStartupWaitMs: number;
  replayWindowMs: number;
  clockSkewMs: number;
  resetState: boolean;
}

function parseServe(argv: string[]): ServeConfig | undefined {
  const { values } = parseArgs({
    args: argv,
    options: {
      'node-id': { type: 'string' },
      host: { type: 'string' },
      port: { type: 'string' },
      'state-dir': { type: 'string' },
      workers: { type: 'string' },
      transport: { type: 'string' },
      'key-file': { type: 'string', multiple: true },
      allow: { type: 'string', multiple: true },
      'rate-limit': { type: 'string' },
      metrics: { type: 'string' },
      'log-level': { type: 'string' },
      backend: { type: 'string' },
      'max-lead-ms': { type: 'string' },
      'reservation-ms': { type: 'string' },
      'max-startup-wait-ms': { type: 'string' },
      'replay-window-ms': { type: 'string' },
      'clock-skew-ms': { type: 'string' },
      'reset-state': { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    process.stdout.write(SERVE_HELP);
    return undefined;
  }
  const day = 86_400_000;
  const maxLeadMs = intOption('--max-lead-ms', envOr(values['max-lead-ms'], 'HAILSTONE_MAX_LEAD_MS'), 2000, 0, day);
  return {
    nodeId: intOption('--node-id', envOr(values['node-id'], 'HAILSTONE_NODE_ID'), 0, 0, 1023),
    host: envOr(values.host, 'HAILSTONE_HOST') ?? DEFAULT_HOST,
    port: intOption('--port', envOr(values.port, 'HAILSTONE_PORT'), DEFAULT_PORT, 0, 65535),
    stateDir: envOr(values['state-dir'], 'HAILSTONE_STATE_DIR') ?? './data',
    workers: intOption('--workers', envOr(values.workers, 'HAILSTONE_WORKERS'), 1, 1, 64),
    transport: choiceOption('--transport', envOr(values.transport, 'HAILSTONE_TRANSPORT'), 'auto', TRANSPORT_CHOICES),
    keys: listOption(values['key-file'], 'HAILSTONE_KEY_FILE').map((f) => readKeyFile(f)!),
    allow: listOption(values.allow, 'HAILSTONE_ALLOW'),
    rateLimit: optional(envOr(values['rate-limit'], 'HAILSTONE_RATE_LIMIT'), parseRateLimit),
    metrics: optional(envOr(values.metrics, 'HAILSTONE_METRICS'), parseListenAddress),
    logLevel: choiceOption('--log-level', envOr(values['log-level'], 'HAILSTONE_LOG_LEVEL'), 'info', [
      'fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent',
    ] as const),
    backend: choiceOption('--backend', envOr(values.backend, 'HAILSTONE_BACKEND'), 'wasm', ['wasm', 'ts'] as const),
    maxLeadMs,
    reservationMs: intOption('--reservation-ms', envOr(values['reservation-ms'], 'HAILSTONE_RESERVATION_MS'), Math.min(1000, maxLeadMs), 1, maxLeadMs),
    maxStartupWaitMs: intOption('--max-startup-wait-ms', envOr(values['max-startup-wait-ms'], 'HAILSTONE_MAX_STARTUP_WAIT_MS'), 0, 0, day),
    replayWindowMs: intOption('--replay-window-ms', envOr(values['replay-window-ms'], 'HAILSTONE_REPLAY_WINDOW_MS'), DEFAULT_REPLAY_WINDOW_MS, 1, day),
    clockSkewMs: intOption('--clock-skew-ms', envOr(values['clock-skew-ms'], 'HAILSTONE_CLOCK_SKEW_MS'), 0, -365 * day, 365 * day),
    resetState: values['reset-state'] ?? false,
  };
}

function optional<T>(text: string | undefined, parse: (t: string) => T): T | undefined {
  if (text === undefined) return undefined;
  try {
    return parse(text);
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
}

/** JSON lines on stderr; stdout carries only the ready and stopped lines. */
function makeLogger(config: ServeConfig, worker?: number): Logger {
  return pino(
    { level: config.logLevel, base: { node: config.nodeId, ...(worker === undefined ? {} : { worker }) } },
    destination({ fd: 2, sync: true }),
  );
}

/** Starts this process's server: the whole node, or one worker's stripe of it. */
async function startServer(config: ServeConfig, worker: { index: number; count: number }, logger: Logger): Promise<Server> {
  try {
    return await serve({
      nodeId: config.nodeId,
      stateDir: config.stateDir,
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
    });
  } catch (error) {
    if (error instanceof InvalidArgumentError) throw new UsageError(error.message);
    throw error;
  }
}

function readyLine(config: ServeConfig, host: string, port: number, transport: string): string {
  const shown = host.includes(':') ? `[${host}]` : host;
  return `hailstone listening on udp://${shown}:${port} node=${config.nodeId} workers=${config.workers} transport=${transport}\n`;
}

function onStopSignal(stop: () => void): void {
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

function snapshotOf(server: Server): WorkerSnapshot {
  return { stats: server.stats(), node: server.node.status() };
}

async function startMetrics(config: ServeConfig, snapshot: () => Promise<NodeSnapshot>, logger: Logger): Promise<MetricsServer | undefined> {
  if (config.metrics === undefined) return undefined;
  const metrics = await serveMetrics(config.metrics.host, config.metrics.port, snapshot);
  logger.info({ metrics: `http://${metrics.address.host}:${metrics.address.port}` }, 'metrics and health served over HTTP');
  return metrics;
}

async function serveSingle(config: ServeConfig): Promise<number> {
  const logger = makeLogger(config);
  const server = await startServer(config, { index: 0, count: 1 }, logger);
  const metrics = await startMetrics(config, async () => ({ workers: [snapshotOf(server)], workerRestarts: 0, expectedWorkers: 1 }), logger);
  const transport = server.stats().transport.name;
  logger.info({ address: server.address, workers: 1, transport, metricsPort: metrics?.address.port }, 'listening');
  process.stdout.write(readyLine(config, server.address.host, server.address.port, transport));
  await new Promise<void>((resolve) => onStopSignal(resolve));
  logger.info({}, 'stopping: no longer receiving');
  await server.close();
  await metrics?.close();
  logger.info({ stats: server.stats() }, 'stopped');
  process.stdout.write('hailstone stopped\n');
  return 0;
}

/** A cluster worker: serves its stripe, reports to the primary, stops when told. */
async function serveWorker(config: ServeConfig): Promise<number> {
  const index = Number(process.env.HAILSTONE_WORKER_INDEX);
  const logger = makeLogger(config, index);
  // The primary decided the transport (and said why, once) and, for native workers, the port.
  const transport = (process.env.HAILSTONE_WORKER_TRANSPORT as TransportChoice | undefined) ?? config.transport;
  const port = process.env.HAILSTONE_WORKER_PORT === undefined ? config.port : Number(process.env.HAILSTONE_WORKER_PORT);
  const server = await startServer({ ...config, transport, port }, { index, count: config.workers }, logger);
  process.send?.({ type: 'listening', index, host: server.address.host, port: server.address.port, transport: server.stats().transport.name });
  await new Promise<void>((resolve) => {
    onStopSignal(resolve);
    process.on('message', (m: { type?: string; id?: number }) => {
      if (m?.type === 'shutdown') resolve();
      if (m?.type === 'snapshot') process.send?.({ type: 'snapshot', id: m.id, snapshot: snapshotOf(server) });
    });
  });
  await server.close();
  // The IPC channel to the primary would keep this process alive.
  process.disconnect?.();
  return 0;
}

async function servePrimary(config: ServeConfig): Promise<number> {
  const logger = makeLogger(config);
  // Decided once, here: the fallback (if any) is logged once for the whole node.
  const transport = resolveTransport(config.transport, logger);
  // Native workers bind the port themselves: the first one picks it (when --port 0), the
  // others and every restarted worker then bind the same one.
  let workerPort: number | undefined = transport === 'native' && config.port !== 0 ? config.port : undefined;
  const workers = new Map<number, Worker>();
  let restarts = 0;
  let nextSnapshot = 0;
  const pendingSnapshots = new Map<number, (s: WorkerSnapshot) => void>();
  const listening = new Set<number>();
  let stopping = false;
  let announced = false;
  let failures = 0;
  let resolveDone: (code: number) => void = () => undefined;
  const done = new Promise<number>((resolve) => {
    resolveDone = resolve;
  });

  const fork = (index: number) => {
    const worker = cluster.fork({
      HAILSTONE_WORKER_INDEX: String(index),
      HAILSTONE_WORKER_TRANSPORT: transport,
      ...(workerPort === undefined ? {} : { HAILSTONE_WORKER_PORT: String(workerPort) }),
    });
    workers.set(index, worker);
    worker.on('message', (m: { type?: string; host?: string; port?: number; id?: number; snapshot?: WorkerSnapshot; transport?: string }) => {
      if (m?.type === 'snapshot') pendingSnapshots.get(m.id!)?.(m.snapshot!);
      if (m?.type !== 'listening') return;
      listening.add(index);
      failures = 0;
      if (transport === 'native' && workerPort === undefined) {
        workerPort = m.port!;
        for (let i = 1; i < config.workers; i++) fork(i);
      }
      if (!announced && listening.size === config.workers) {
        announced = true;
        process.stdout.write(readyLine(config, m.host!, m.port!, m.transport!));
      }
    });
    worker.on('exit', (code, signal) => {
      workers.delete(index);
      const wasListening = listening.delete(index);
      if (stopping) {
        if (workers.size === 0) resolveDone(0);
        return;
      }
      if (!wasListening && !announced) {
        // It failed to start (it printed why): starting again would fail the same way.
        stopping = true;
        for (const w of workers.values()) w.send({ type: 'shutdown' });
        if (workers.size === 0) resolveDone(1);
        else void Promise.resolve().then(() => done).then(() => process.exit(1));
        return;
      }
      failures++;
      restarts++;
      const delay = Math.min(5000, 100 * 2 ** Math.min(failures, 6));
      logger.error({ worker: index, code, signal, restartInMs: delay }, `worker ${index} exited; restarting it`);
      setTimeout(() => !stopping && fork(index), delay);
    });
  };

  // The whole node's view for /metrics and /healthz: ask every live worker, wait at most 1 s.
  const snapshot = async (): Promise<NodeSnapshot> => {
    const asked = [...listening].map((index) => workers.get(index)).filter((w): w is Worker => w !== undefined);
    const answers = await Promise.all(
      asked.map(
        (w) =>
          new Promise<WorkerSnapshot | undefined>((resolve) => {
            const id = nextSnapshot++;
            const timer = setTimeout(() => {
              pendingSnapshots.delete(id);
              resolve(undefined);
            }, 1000);
            pendingSnapshots.set(id, (s) => {
              clearTimeout(timer);
              pendingSnapshots.delete(id);
              resolve(s);
            });
            w.send({ type: 'snapshot', id });
          }),
      ),
    );
    return { workers: answers.filter((a): a is WorkerSnapshot => a !== undefined), workerRestarts: restarts, expectedWorkers: config.workers };
  };
  const metrics = await startMetrics(config, snapshot, logger);
  if (transport === 'native' && workerPort === undefined) fork(0);
  else for (let i = 0; i < config.workers; i++) fork(i);
  onStopSignal(() => {
    logger.info({}, 'stopping: telling the workers');
    stopping = true;
    if (workers.size === 0) resolveDone(0);
    for (const w of workers.values()) w.send({ type: 'shutdown' });
  });
  const code = await done;
  await metrics?.close();
  if (code === 0) {
    logger.info({ workerRestarts: restarts }, 'stopped');
    process.stdout.write('hailstone stopped\n');
  }
  return code;
}

export async function serveCommand(argv: string[]): Promise<number> {
  const config = parseServe(argv);
  if (config === undefined) return 0;
  if (config.workers === 1) return serveSingle(config);
  return cluster.isPrimary ? servePrimary(config) : serveWorker(config);
}

