// hailstone serve: one node of the id service, in one process or N worker processes.
//
// With --workers N, a primary process forks N workers with node:cluster. Each owns its own
// stripe of the node's sequence space and its own durable reservation, so their ids never
// collide. With the dgram transport they share one UDP socket (Node 20's dgram has no
// SO_REUSEPORT; cluster hands every worker the same handle). With the native transport
// each worker binds its own socket to the one port with SO_REUSEPORT and the kernel
// spreads clients across them (by source address and port). A worker that dies is
// restarted with the same stripe; its reservation makes that safe.

import cluster from 'node:cluster';
import { parseArgs } from 'node:util';
import { parseListenAddress } from '../server/metrics.js';
import { parseRateLimit } from '../server/rate-limit.js';
import { TRANSPORT_CHOICES } from '../server/select-transport.js';
import { DEFAULT_HOST, DEFAULT_PORT, DEFAULT_REPLAY_WINDOW_MS, type Server } from '../server/server.js';
import { choiceOption, envOr, intOption, listOption, readKeyFile } from './args.js';
import { UsageError } from './failure.js';
import { type ServeConfig, ServingProcess, makeLogger, onStopSignal, readyLine, say, startMetrics } from './run-server.js';
import { servePrimary } from './supervisor.js';
import { serveWorker } from './worker.js';

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

async function serveSingle(config: ServeConfig): Promise<number> {
  const logger = makeLogger(config);
  const proc = new ServingProcess(0);
  // Bound before the node opens, like the UDP port: a taken port fails at once.
  const metrics = await startMetrics(
    config,
    async () => ({ workers: [proc.snapshot()].filter((s) => s !== undefined), workerRestarts: 0, expectedWorkers: 1 }),
    logger,
  );
  let stop: () => void = () => undefined;
  const stopped = new Promise<void>((resolve) => {
    stop = resolve;
  });
  onStopSignal(() => stop());
  let server: Server | undefined;
  try {
    server = await Promise.race([proc.start(config, { index: 0, count: 1 }, logger), stopped.then(() => undefined)]);
  } catch (error) {
    await metrics?.close();
    throw error;
  }
  if (server === undefined) {
    // Stopped while still starting.
    await metrics?.close();
    logger.info({}, 'stopped before serving');
    say('hailstone stopped\n');
    process.exit(0);
  }
  const transport = server.stats().transport.name;
  logger.info({ address: server.address, workers: 1, transport, metricsPort: metrics?.address.port }, 'listening');
  say(readyLine(config, server.address.host, server.address.port, transport));
  await stopped;
  logger.info({}, 'stopping: no longer receiving');
  await server.close();
  await metrics?.close();
  logger.info({ stats: server.stats() }, 'stopped');
  say('hailstone stopped\n');
  return 0;
}

export async function serveCommand(argv: string[]): Promise<number> {
  const config = parseServe(argv);
  if (config === undefined) return 0;
  if (config.workers === 1) return serveSingle(config);
  return cluster.isPrimary ? servePrimary(config) : serveWorker(config);
}
