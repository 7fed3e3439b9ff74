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
import { parseAdvertise, resolveHost } from '../address.js';
import { Command, Option } from 'commander';
import { MIN_RESERVATION_MS } from '../node/options.js';
import { readKeyFile } from '../protocol/auth.js';
import { DEFAULT_HTTP_HEADERS_TIMEOUT_MS, DEFAULT_HTTP_MAX_CONNECTIONS, DEFAULT_HTTP_REQUEST_TIMEOUT_MS, readTokenFile } from '../server/http-server.js';
import { parseListenAddress } from '../server/metrics.js';
import { type RateLimitOptions, parseRateLimit } from '../server/rate-limit.js';
import { TRANSPORT_CHOICES, type TransportChoice } from '../server/select-transport.js';
import { DEFAULT_HOST, DEFAULT_PORT, DEFAULT_REPLAY_WINDOW_MS } from '../server/server.js';
import { type Backend, DEFAULT_MAX_LEAD_MS, MAX_LEAD_MS_LIMIT } from '../generator.js';
import { DEFAULT_LAYOUT } from '../layout.js';
import { nodeIdFromOrdinal } from '../node/ordinal.js';
import { UsageError } from './failure.js';
import { type EtcdFlags, addEtcdAccessOptions, etcdOptionsOf } from './etcd-options.js';
import { booleanWithEnv, choiceOption, intOption, keyFileExposure, listOption, parsedOption, passwordFileExposure } from './options.js';
import type { HttpIdServer } from '../server/http-server.js';
import type { NodeSnapshot } from '../server/health.js';
import { type ServeConfig, ServingProcess, httpOnlyReadyLine, makeLogger, onStopSignal, readyLine, say, startHttp, startMetrics, warnAboutKeyFiles } from './run-server.js';
import { DEFAULT_CLUSTER, DEFAULT_COORDINATOR_WAIT_MS, DEFAULT_LEASE_TTL_S, MAX_LEASE_TTL_S, MIN_LEASE_TTL_S, defaultClaimWaitMs } from '../fleet/defaults.js';
import { servePrimary } from './supervisor.js';
import { serveWorker } from './worker.js';

const DAY = 86_400_000;
const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

interface ServeFlags extends EtcdFlags {
  nodeId?: number;
  host: string;
  port: number;
  stateDir?: string;
  workers: number;
  transport: TransportChoice;
  keyFile: string[];
  allow: string[];
  rateLimit?: RateLimitOptions;
  metrics?: { host: string; port: number };
  http?: { host: string; port: number };
  /** false with --no-udp. */
  udp: boolean;
  httpTokenFile: string[];
  httpMaxConnections: number;
  httpHeadersTimeoutMs: number;
  httpRequestTimeoutMs: number;
  logLevel: string;
  backend: Backend;
  maxLeadMs: number;
  reservationMs?: number;
  maxStartupWaitMs: number;
  replayWindowMs: number;
  clockSkewMs: number;
  resetState?: boolean;
  cluster: string;
  advertise?: string;
  claimWaitMs: number;
  leaseTtlS: number;
  etcdWaitMs: number;
}

/** The serve command's declaration: flags, variables, ranges and help in one place. */
export function serveProgram(run: (config: ServeConfig) => Promise<number>): Command {
  const command = new Command('serve')
    .description('Serve ids over UDP (protocol v1) from one node. Every option can also be set with its environment variable.')
    .addOption(
      parsedOption(
        '--node-id <n|ordinal>',
        "this node's id; unique among live nodes (default: 0; with --etcd: a free one is claimed); ordinal: the trailing -N of the host name (a StatefulSet's pod)",
        'HAILSTONE_NODE_ID',
        parseNodeId,
      ),
    )
    .addOption(new Option('--host <addr>', 'address to bind (never all interfaces unless asked)').env('HAILSTONE_HOST').default(DEFAULT_HOST))
    .addOption(intOption('--port <p>', 'UDP port; 0 picks a free one', 'HAILSTONE_PORT', { min: 0, max: 65535, default: DEFAULT_PORT }))
    .addOption(new Option('--state-dir <dir>', 'durable state, on local storage (default: ./data; with --etcd: none, or an extra floor)').env('HAILSTONE_STATE_DIR'))
    .addOption(intOption('--workers <n>', 'worker processes sharing the port', 'HAILSTONE_WORKERS', { min: 1, max: 64, default: 1 }))
    .addOption(choiceOption('--transport <t>', 'native: batched recvmmsg/sendmmsg; auto: native where its addon loads, else dgram', 'HAILSTONE_TRANSPORT', TRANSPORT_CHOICES, 'auto'))
    .addOption(listOption('--key-file <file>', 'shared key: requests must be authenticated; repeat (or comma-separate) to accept several keys while rotating', 'HAILSTONE_KEY_FILE', 'none: no authentication'))
    .addOption(listOption('--allow <cidr>', 'source networks allowed to ask; repeat or comma-separate', 'HAILSTONE_ALLOW', 'everyone'))
    .addOption(parsedOption('--rate-limit <rps[:burst]>', 'per-source token bucket; excess is dropped', 'HAILSTONE_RATE_LIMIT', parseRateLimit, 'off'))
    .addOption(parsedOption('--metrics <[host:]port>', 'serve /metrics and /healthz over HTTP', 'HAILSTONE_METRICS', parseListenAddress, 'off'))
    .addOption(parsedOption('--http <[host:]port>', 'serve ids over HTTP too (GET /v1/ids?count=N, GET /v1/id), from the same node; the same address as --metrics serves both', 'HAILSTONE_HTTP', parseListenAddress, 'off'))
    .addOption(new Option('--no-udp', 'serve ids over HTTP alone (needs --http): no UDP port is bound (env HAILSTONE_NO_UDP=1)'))
    .addOption(listOption('--http-token-file <file>', 'HTTP: require Authorization: Bearer with the token in this file; repeat (or comma-separate) to accept several while rotating', 'HAILSTONE_HTTP_TOKEN_FILE', 'none: no token asked'))
    .addOption(intOption('--http-max-connections <n>', 'HTTP: connections open at once; more are closed unread', 'HAILSTONE_HTTP_MAX_CONNECTIONS', { min: 1, max: 1_000_000, default: DEFAULT_HTTP_MAX_CONNECTIONS }))
    .addOption(intOption('--http-headers-timeout-ms <ms>', "HTTP: how long a client may take to send a request's headers (then 408)", 'HAILSTONE_HTTP_HEADERS_TIMEOUT_MS', { min: 1, max: DAY, default: DEFAULT_HTTP_HEADERS_TIMEOUT_MS }))
    .addOption(intOption('--http-request-timeout-ms <ms>', 'HTTP: how long a client may take to send a whole request (then 408)', 'HAILSTONE_HTTP_REQUEST_TIMEOUT_MS', { min: 1, max: DAY, default: DEFAULT_HTTP_REQUEST_TIMEOUT_MS }))
    .addOption(choiceOption('--log-level <level>', 'JSON log lines on stderr at this level and above', 'HAILSTONE_LOG_LEVEL', LOG_LEVELS, 'info'))
    .addOption(choiceOption('--backend <core>', 'generator core', 'HAILSTONE_BACKEND', ['wasm', 'ts'], 'wasm'))
    .addOption(intOption('--max-lead-ms <ms>', 'how far ids may run ahead of the clock', 'HAILSTONE_MAX_LEAD_MS', { min: MIN_RESERVATION_MS, max: MAX_LEAD_MS_LIMIT, default: DEFAULT_MAX_LEAD_MS }))
    .addOption(intOption('--reservation-ms <ms>', 'how far each durable reservation reaches, at most --max-lead-ms (default: 1000, or --max-lead-ms if smaller)', 'HAILSTONE_RESERVATION_MS', { min: MIN_RESERVATION_MS, max: MAX_LEAD_MS_LIMIT }))
    .addOption(intOption('--max-startup-wait-ms <ms>', 'at startup, wait this long for a clock behind the stored state instead of refusing', 'HAILSTONE_MAX_STARTUP_WAIT_MS', { min: 0, max: DAY, default: 0 }))
    .addOption(intOption('--replay-window-ms <ms>', 'with a key: how old an accepted request may be', 'HAILSTONE_REPLAY_WINDOW_MS', { min: 1, max: DAY, default: DEFAULT_REPLAY_WINDOW_MS }))
    .addOption(intOption('--clock-skew-ms <ms>', 'shift the clock, to rehearse clock steps (negative: behind)', 'HAILSTONE_CLOCK_SKEW_MS', { min: -365 * DAY, max: 365 * DAY, default: 0 }))
    .addOption(listOption('--etcd <url>', 'fleet mode: etcd endpoints (repeat or comma-separate; https:// for TLS); node ids and reservations are granted by etcd', 'HAILSTONE_ETCD', 'off: local mode'));
  return addEtcdAccessOptions(command)
    .addOption(new Option('--cluster <name>', 'fleet mode: node ids are unique within this cluster').env('HAILSTONE_CLUSTER').default(DEFAULT_CLUSTER))
    .addOption(new Option('--advertise <host[:port]>', 'fleet mode: the UDP address clients are told, in the claim (default: the bound one; the port: the bound one)').env('HAILSTONE_ADVERTISE'))
    .addOption(intOption('--claim-wait-ms <ms>', 'fleet mode with --node-id: wait this long for its holder to go away, then NODE_ID_TAKEN (default: the lease TTL + 1 s)', 'HAILSTONE_CLAIM_WAIT_MS', { min: 0, max: DAY }))
    .addOption(intOption('--lease-ttl-s <s>', 'fleet mode: lease TTL; a dead holder\'s node id can move after this long', 'HAILSTONE_LEASE_TTL_S', { min: MIN_LEASE_TTL_S, max: MAX_LEASE_TTL_S, default: DEFAULT_LEASE_TTL_S }))
    .addOption(intOption('--etcd-wait-ms <ms>', 'fleet mode: at startup, wait this long for etcd, then COORDINATOR_UNAVAILABLE', 'HAILSTONE_ETCD_WAIT_MS', { min: 0, max: DAY, default: DEFAULT_COORDINATOR_WAIT_MS }))
    .addOption(new Option('--reset-state', 'start over from a damaged state file, as a first start (env HAILSTONE_RESET_STATE=1)'))
    .addHelpText(
      'after',
      `
When ready it prints "hailstone listening on udp://HOST:PORT node=N workers=W transport=T"
on stdout (with --http, after "hailstone listening on http://HOST:PORT"; with --no-udp,
"hailstone serving over http only node=N workers=W" instead); logs are JSON
lines on stderr. SIGTERM or SIGINT: stops receiving (HTTP: answers what is in flight),
releases the state lock, prints "hailstone stopped" and exits 0. Exit codes: 0 stopped, 1 runtime failure
(one line: "hailstone: CODE: message"), 2 bad usage.`,
    )
    .action(async (flags: ServeFlags) => {
      process.exitCode = await run(configOf(flags));
    });
}

/** --node-id: a number from 0 to the layout's largest node id, or "ordinal" (from the host name). */
function parseNodeId(text: string): number {
  if (text.trim().toLowerCase() === 'ordinal') return nodeIdFromOrdinal(DEFAULT_LAYOUT.maxNodeId);
  const value = /^\s*\d+\s*$/.test(text) ? Number(text) : NaN;
  if (!Number.isSafeInteger(value) || value > DEFAULT_LAYOUT.maxNodeId) {
    throw new Error(`It must be an integer from 0 to ${DEFAULT_LAYOUT.maxNodeId}, or ordinal.`);
  }
  return value;
}

function configOf(flags: ServeFlags): ServeConfig {
  // The node checks this too, but only after the port is bound; its default never exceeds the lead.
  const { maxLeadMs, reservationMs } = flags;
  if (reservationMs !== undefined && reservationMs > maxLeadMs) {
    throw new UsageError(`--reservation-ms (${reservationMs}) must not exceed --max-lead-ms (${maxLeadMs}): a reservation never reaches further than the lead`);
  }
  const etcd = etcdOptionsOf(flags);
  const fleet = etcd !== undefined;
  const passwordExposure = fleet && flags.etcdPasswordFile !== undefined ? passwordFileExposure(flags.etcdPasswordFile) : undefined;
  if (!fleet && flags.claimWaitMs !== undefined) throw new UsageError('--claim-wait-ms needs --etcd (fleet mode)');
  if (flags.http !== undefined && flags.workers > 1 && flags.metrics !== undefined && flags.http.port !== 0 && flags.http.port === flags.metrics.port) {
    throw new UsageError('--metrics on the --http address needs --workers 1: with workers, /metrics is the primary\'s and HTTP is theirs; give --metrics another port');
  }
  if (flags.http === undefined && flags.httpTokenFile.length > 0) throw new UsageError('--http-token-file needs --http');
  const udp = flags.udp !== false && !booleanWithEnv(undefined, 'HAILSTONE_NO_UDP');
  if (!udp) {
    if (flags.http === undefined) throw new UsageError('--no-udp needs --http: without UDP, ids are served over HTTP alone');
    if (flags.keyFile.length > 0) throw new UsageError('--key-file authenticates UDP requests, and --no-udp serves none: use --http-token-file');
    if (flags.advertise !== undefined) throw new UsageError('--advertise names the UDP address of a fleet claim, and --no-udp serves none');
  }
  if (!fleet && flags.advertise !== undefined) throw new UsageError('--advertise needs --etcd (fleet mode): only a claim in etcd carries the address');
  if (flags.advertise !== undefined) parseAdvertise(flags.advertise); // bad usage before a port is bound
  return {
    nodeId: fleet ? flags.nodeId : (flags.nodeId ?? 0),
    host: flags.host,
    port: flags.port,
    stateDir: fleet ? flags.stateDir : (flags.stateDir ?? './data'),
    workers: flags.workers,
    udp,
    transport: flags.transport,
    keys: flags.keyFile.map((file) => readKeyFile(file)),
    keyFileWarnings: [
      ...[...flags.keyFile, ...flags.httpTokenFile].flatMap((keyFile) => {
        const message = keyFileExposure(keyFile);
        return message === undefined ? [] : [{ keyFile, message }];
      }),
      ...(passwordExposure === undefined ? [] : [{ keyFile: flags.etcdPasswordFile!, message: passwordExposure }]),
    ],
    allow: flags.allow,
    rateLimit: flags.rateLimit,
    metrics: flags.metrics,
    http:
      flags.http === undefined
        ? undefined
        : {
            ...flags.http,
            tokens: flags.httpTokenFile.map((file) => readTokenFile(file)),
            maxConnections: flags.httpMaxConnections,
            headersTimeoutMs: flags.httpHeadersTimeoutMs,
            requestTimeoutMs: flags.httpRequestTimeoutMs,
          },
    logLevel: flags.logLevel,
    backend: flags.backend,
    maxLeadMs,
    reservationMs,
    maxStartupWaitMs: flags.maxStartupWaitMs,
    replayWindowMs: flags.replayWindowMs,
    clockSkewMs: flags.clockSkewMs,
    resetState: booleanWithEnv(flags.resetState, 'HAILSTONE_RESET_STATE'),
    etcd,
    cluster: flags.cluster,
    ...(flags.advertise === undefined ? {} : { advertise: flags.advertise }),
    claimWaitMs: flags.claimWaitMs ?? defaultClaimWaitMs(fleet && flags.nodeId !== undefined, flags.leaseTtlS),
    leaseTtlS: flags.leaseTtlS,
    etcdWaitMs: flags.etcdWaitMs,
  };
}

async function serveSingle(config: ServeConfig): Promise<number> {
  const logger = makeLogger(config);
  warnAboutKeyFiles(config, logger);
  const proc = new ServingProcess(0);
  let http: HttpIdServer | undefined;
  const snapshot = async (): Promise<NodeSnapshot> => {
    const fleet = proc.live?.fleetStats();
    return {
      workers: [proc.snapshot()].filter((s) => s !== undefined),
      workerRestarts: 0,
      expectedWorkers: 1,
      ...(fleet === undefined ? {} : { fleet }),
      ...(http === undefined ? {} : { http: http.stats() }),
    };
  };
  await proc.prepare(config, { index: 0, count: 1 }, logger);
  // Bound before the node opens, like the UDP port: a taken port fails at once. Where
  // --metrics and --http name one address, the HTTP server answers /metrics and /healthz.
  // Port 0 asks for any free port, so two of them never name one address.
  const shared =
    config.http !== undefined &&
    config.metrics !== undefined &&
    config.http.port !== 0 &&
    config.http.port === config.metrics.port &&
    (await sameHost(config.http.host, config.metrics.host));
  const metrics = shared ? undefined : await startMetrics(config, snapshot, logger);
  try {
    http = await startHttp(config, proc, logger, shared ? snapshot : undefined);
  } catch (error) {
    await metrics?.close();
    await proc.close();
    throw error;
  }
  let stop: () => void = () => undefined;
  const stopped = new Promise<void>((resolve) => {
    stop = resolve;
  });
  onStopSignal(() => stop());
  let serving: boolean;
  try {
    serving = await Promise.race([proc.start().then(() => true), stopped.then(() => false)]);
  } catch (error) {
    await http?.close(0);
    await metrics?.close();
    throw error;
  }
  if (!serving) {
    // Stopped while still starting.
    await http?.close();
    await metrics?.close();
    logger.info({}, 'stopped before serving');
    say('hailstone stopped\n');
    process.exit(0);
  }
  const server = proc.server;
  if (server === undefined) {
    logger.info({ http: http?.address, workers: 1, metricsPort: metrics?.address.port }, 'serving over HTTP only');
    say(httpOnlyReadyLine(config, proc.servedNodeId()));
  } else {
    const transport = server.stats().transport.name;
    logger.info({ address: server.address, workers: 1, transport, metricsPort: metrics?.address.port }, 'listening');
    say(readyLine(config, server.address.host, server.address.port, transport, proc.servedNodeId()));
  }
  const failure = await Promise.race([stopped.then(() => undefined), proc.failed]);
  if (failure !== undefined) {
    await http?.close(0);
    await proc.close();
    await metrics?.close();
    throw failure;
  }
  logger.info({}, 'stopping: no longer receiving');
  // HTTP first: the requests in flight are answered from the node before it closes.
  await http?.close();
  await proc.close();
  await metrics?.close();
  // What was served, over UDP and (with --http) over HTTP: the same node answered both.
  logger.info({ ...(server === undefined ? {} : { stats: server.stats() }), ...(http === undefined ? {} : { http: http.stats() }) }, 'stopped');
  say('hailstone stopped\n');
  return 0;
}

/** Runs the server: one process, or the primary or a worker of --workers N. */
export async function runServe(config: ServeConfig): Promise<number> {
  if (config.workers === 1) return serveSingle(config);
  return cluster.isPrimary ? servePrimary(config) : serveWorker(config);
}

/** Whether two host names or addresses are one ("localhost" and 127.0.0.1 are); a name that does not resolve is itself. */
async function sameHost(a: string, b: string): Promise<boolean> {
  if (a === b) return true;
  const [ra, rb] = await Promise.all([resolveHost(a).catch(() => a), resolveHost(b).catch(() => b)]);
  return ra === rb;
}
