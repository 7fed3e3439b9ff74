// Ids over HTTP/1.1 (`--http`): the routes of http-routes.ts on a node:http server, in
// front of the same node as the UDP port.
//
// node:http rather than a framework: the routes are two GETs, and the costs that matter
// per request — parsing, the header object, the socket write — are node:http's whatever
// sits on top; a router would only add its own. The defences are node:http's too, set
// tighter than its defaults: headers timeout, request timeout, header size, open
// connections. Per source address, before anything else: the allowlist (a connection
// from elsewhere is closed unread, as UDP drops its datagrams) and the rate limit (429).
// Bearer tokens, when configured, are compared in constant time.
//
// close(): stops accepting, answers the requests already in flight (with Connection:
// close), closes idle keep-alive connections at once, and after a grace period any left.

import { createHash, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { type IncomingMessage, type ServerResponse, createServer } from 'node:http';
// The module's, not the global: the global `performance` is a lazy getter, read twice a request.
import { performance } from 'node:perf_hooks';
import { listenHttp } from './http-listen.js';
import type { BlockList, Socket } from 'node:net';
import { hostPort, listenPort, resolveHost } from '../address.js';
import { InvalidArgumentError, describe } from '../errors.js';
import { type NodeLogger, stderrLogger } from '../logger.js';
import { HttpCounters, type HttpStats } from './http-metrics.js';
import { type HttpAnswer, ID_ROUTE_METHODS, type RouteLabel, TEXT_TYPE, answerIdRoute, errorAnswer, idScratch, issue, notFound, routeOf } from './http-routes.js';
import { type RateLimitOptions, RateLimiter } from './rate-limit.js';
import { parseAllowList } from './allow-list.js';
import { type PortGuard, holdPort } from './port-guard.js';
import { warmHttpPath } from './http-warmup.js';
import { type ServingNode, DEFAULT_HOST } from './server.js';

export const DEFAULT_HTTP_HEADERS_TIMEOUT_MS = 10_000;
export const DEFAULT_HTTP_REQUEST_TIMEOUT_MS = 30_000;
export const DEFAULT_HTTP_KEEP_ALIVE_TIMEOUT_MS = 5_000;
export const DEFAULT_HTTP_MAX_HEADER_BYTES = 8192;
export const DEFAULT_HTTP_MAX_CONNECTIONS = 1024;
export const DEFAULT_HTTP_CLOSE_GRACE_MS = 10_000;
/**
 * The longest a request waits, while the server starts, for it to know how long it will be:
 * reading the state takes a few ms; a fleet claim can take seconds, and is not waited out.
 */
const PLAN_WAIT_MS = 1000;
/** Bearer tokens shorter than this are refused: guessable. */
export const MIN_TOKEN_LENGTH = 16;

export interface HttpServeOptions {
  /** The node to answer from: a LiveNode, or servingNodeOf(server) for a UDP server's node. */
  source: ServingNode;
  /** Default 127.0.0.1: never all interfaces unless asked. */
  host?: string;
  /** 0 picks a free port. */
  port: number;
  /** Bearer tokens, any of which is accepted (several while rotating). Default: none asked. */
  tokens?: string[];
  /** Source networks allowed to connect, as CIDRs. Default: everyone. */
  allow?: string[];
  /** Per-source token bucket over requests; excess is answered 429. Default: off. */
  rateLimit?: RateLimitOptions;
  /** How long a client may take to send a request's headers. Default 10 s. */
  headersTimeoutMs?: number;
  /** How long a client may take to send a whole request. Default 30 s. */
  requestTimeoutMs?: number;
  /** How long an idle keep-alive connection stays open. Default 5 s. */
  keepAliveTimeoutMs?: number;
  /** The largest request head accepted (431 beyond). Default 8 KiB. */
  maxHeaderBytes?: number;
  /** Connections open at once; more are closed unread. Default 1024. */
  maxConnections?: number;
  /**
   * Holds the port's guard (port-guard.ts) while it listens: a second hailstone server on this
   * port number is refused naming this one. Give it where this process alone serves the port
   * (a cluster's primary holds it for its workers).
   */
  guard?: { nodeId: number | undefined; workers: number };
  /**
   * Run node:http's request path on a private loopback server at startup (http-warmup.ts), so
   * that this server's answers stay fast whatever its first requests and garbage collections
   * were. Default true.
   */
  warmUp?: boolean;
  /** More routes on the same server (GET /metrics and /healthz when --metrics names this address). */
  extra?: { paths: readonly string[]; handle: (req: IncomingMessage, res: ServerResponse) => void };
  logger?: NodeLogger;
}

export interface HttpIdServer {
  /** The bound address (port 0 resolved). */
  readonly address: { host: string; port: number };
  stats(): HttpStats;
  /** Settles once the start-up warm-up of node:http's path is over (at once with `warmUp: false`). */
  readonly warmedUp: Promise<void>;
  /**
   * Stops accepting, finishes the requests in flight, closes idle keep-alive connections;
   * after `graceMs` (default 10 s) closes whatever is still open. Resolves once all are closed.
   */
  close(graceMs?: number): Promise<void>;
}

/** Bearer tokens, compared in constant time: equal-length digests, and every token checked. */
export class TokenSet {
  private readonly digests: Buffer[];

  constructor(tokens: string[]) {
    this.digests = tokens.map((token, i) => {
      if (typeof token !== 'string' || token.length < MIN_TOKEN_LENGTH || /\s/.test(token)) {
        throw new InvalidArgumentError(`tokens[${i}]`, `must be at least ${MIN_TOKEN_LENGTH} characters without spaces`);
      }
      return digest(token);
    });
  }

  get size(): number {
    return this.digests.length;
  }

  /** Whether an Authorization header carries one of the tokens. */
  accepts(authorization: string | undefined): boolean {
    if (authorization === undefined || authorization.length < 7 || authorization.slice(0, 7).toLowerCase() !== 'bearer ') return false;
    const given = digest(authorization.slice(7).trim());
    let ok = false;
    // No early exit: how long this takes says nothing about which token came close.
    for (const d of this.digests) ok = timingSafeEqual(given, d) || ok;
    return ok;
  }
}

function digest(text: string): Buffer {
  return createHash('sha256').update(text, 'utf8').digest();
}

/** Reads a token file (--http-token-file): its text, trimmed. Throws naming the file. */
export function readTokenFile(path: string): string {
  let text: string;
  try {
    text = readFileSync(path, 'utf8').trim();
  } catch (error) {
    throw new InvalidArgumentError('httpTokenFile', `cannot read the token file ${path}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
  }
  if (text.length < MIN_TOKEN_LENGTH || /\s/.test(text)) {
    throw new InvalidArgumentError('httpTokenFile', `the token file ${path} must hold one token of at least ${MIN_TOKEN_LENGTH} characters without spaces`);
  }
  return text;
}

function positive(name: string, value: number | undefined, fallback: number): number {
  const v = value ?? fallback;
  if (!Number.isInteger(v) || v < 1) throw new InvalidArgumentError(name, `must be a positive integer, got ${describe(v)}`);
  return v;
}

/** The address a socket's peer connects from, IPv4-mapped IPv6 as plain IPv4. */
function sourceOf(socket: Socket): { address: string; family: 'ipv4' | 'ipv6' } {
  const address = socket.remoteAddress ?? '';
  if (address.startsWith('::ffff:') && address.includes('.')) return { address: address.slice(7), family: 'ipv4' };
  return { address, family: socket.remoteFamily === 'IPv6' ? 'ipv6' : 'ipv4' };
}

/** Starts the HTTP front end; resolves once it listens. A taken port fails at once. */
export async function serveHttp(options: HttpServeOptions): Promise<HttpIdServer> {
  const host = await resolveHost(options.host ?? DEFAULT_HOST);
  const port = listenPort(options.port);
  const headersTimeout = positive('headersTimeoutMs', options.headersTimeoutMs, DEFAULT_HTTP_HEADERS_TIMEOUT_MS);
  const requestTimeout = Math.max(headersTimeout, positive('requestTimeoutMs', options.requestTimeoutMs, DEFAULT_HTTP_REQUEST_TIMEOUT_MS));
  const keepAliveTimeout = positive('keepAliveTimeoutMs', options.keepAliveTimeoutMs, DEFAULT_HTTP_KEEP_ALIVE_TIMEOUT_MS);
  const maxHeaderSize = positive('maxHeaderBytes', options.maxHeaderBytes, DEFAULT_HTTP_MAX_HEADER_BYTES);
  const maxConnections = positive('maxConnections', options.maxConnections, DEFAULT_HTTP_MAX_CONNECTIONS);
  const tokens = options.tokens === undefined || options.tokens.length === 0 ? undefined : new TokenSet(options.tokens);
  const allow: BlockList | undefined = options.allow === undefined || options.allow.length === 0 ? undefined : parseAllowList(options.allow);
  const limiter = options.rateLimit === undefined ? undefined : new RateLimiter(options.rateLimit);
  const rateRetryMs = options.rateLimit === undefined ? 0 : Math.ceil(1000 / options.rateLimit.perSecond);
  const logger = options.logger ?? stderrLogger;
  const source = options.source;
  const extra = options.extra;
  const counters = new HttpCounters();
  const scratch = idScratch();
  let closing = false;

  const send = (res: ServerResponse, route: RouteLabel, a: HttpAnswer): void => {
    if (a.head !== true) a.headers['content-length'] = String(Buffer.byteLength(a.body));
    if (closing) a.headers.connection = 'close';
    res.writeHead(a.status, a.headers).end(a.body);
    counters.answered(route, a.status);
  };

  const untilPlanned = async (): Promise<void> => {
    const until = Date.now() + PLAN_WAIT_MS;
    while (!closing && source.node() === undefined && !source.planned!() && Date.now() < until) await new Promise((r) => setTimeout(r, 5));
  };

  const onRequest = (req: IncomingMessage, res: ServerResponse, planWaited: boolean): void => {
    const started = performance.now();
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const path = q < 0 ? url : url.slice(0, q);
    const route = routeOf(path);
    if (extra !== undefined && extra.paths.includes(path)) {
      res.once('finish', () => counters.answered(route, res.statusCode));
      if (closing) res.setHeader('connection', 'close');
      extra.handle(req, res);
      return;
    }
    if (limiter !== undefined && !limiter.allow(sourceOf(req.socket).address, Date.now())) {
      send(res, route, errorAnswer(429, 'RATE_LIMITED', 'too many requests from this address: slow down', { retryAfterMs: rateRetryMs }));
      return;
    }
    if (tokens !== undefined && !tokens.accepts(req.headers.authorization)) {
      send(res, route, errorAnswer(401, 'UNAUTHORIZED', 'a valid Authorization: Bearer token is required', { headers: { 'www-authenticate': 'Bearer realm="hailstone"' } }));
      return;
    }
    if (route !== '/v1/ids' && route !== '/v1/id') {
      send(res, route, notFound(path));
      return;
    }
    if (!planWaited && source.planned !== undefined && source.node() === undefined && !source.planned()) {
      // Starting, and how long for is not known yet (the state is being read): answer once
      // it is — within a few ms as a rule, at most PLAN_WAIT_MS — with the real wait.
      void untilPlanned().then(() => handle(req, res, true));
      return;
    }
    if (route === '/v1/id' && req.method === 'GET') {
      // The single id, the hottest route: no answer object, and req.headers (parsed on
      // first use) left alone.
      const n = issue(source, scratch, 1);
      if (typeof n !== 'number') send(res, route, n);
      else {
        const body = `${scratch.readBigUInt64BE(0)}\n`;
        const headers: Record<string, string> = { 'content-type': TEXT_TYPE, 'cache-control': 'no-store', 'content-length': String(body.length) };
        if (closing) headers.connection = 'close';
        res.writeHead(200, headers).end(body);
        counters.answered(route, 200);
        counters.idsServed++;
      }
      counters.observe(route, (performance.now() - started) / 1000);
      return;
    }
    const answer = answerIdRoute(route, req.method, q < 0 ? '' : url.slice(q + 1), route === '/v1/ids' ? req.headers.accept : undefined, source, scratch);
    counters.idsServed += answer.ids ?? 0;
    send(res, route, answer);
    counters.observe(route, (performance.now() - started) / 1000);
  };

  const http = createServer(
    {
      headersTimeout,
      requestTimeout,
      keepAliveTimeout,
      maxHeaderSize,
      // An HTTP/1.1 request without Host is answered like any other (node:http would send a
      // bare 400 with no body): the routes do not depend on it.
      requireHostHeader: false,
      // How often node:http looks for clients past their headers or request timeout.
      connectionsCheckingInterval: Math.max(10, Math.min(1000, Math.floor(headersTimeout / 4))),
    },
    (req, res) => handle(req, res),
  );
  function handle(req: IncomingMessage, res: ServerResponse, planWaited = false): void {
    try {
      onRequest(req, res, planWaited);
    } catch (error) {
      // Not reachable by input, but a bug must cost one request, never the process — nor a stack trace.
      logger.error({ err: String(error) }, 'unexpected error while answering an HTTP request');
      if (!res.headersSent) send(res, 'other', errorAnswer(500, 'INTERNAL', 'the server failed to answer this request'));
      else res.destroy();
    }
  }
  // An Expect other than 100-continue: node:http would answer a bare 417; RFC 9110 lets a
  // server ignore it, so the request is answered as it is.
  http.on('checkExpectation', (req: IncomingMessage, res: ServerResponse) => handle(req, res));
  http.maxConnections = maxConnections;
  http.on('drop', () => counters.connectionsDropped.max_connections++);
  if (allow !== undefined) {
    http.on('connection', (socket: Socket) => {
      const from = sourceOf(socket);
      if (!allow.check(from.address, from.family)) {
        counters.connectionsDropped.not_allowed++;
        socket.destroy();
      }
    });
  }
  http.on('clientError', (error: NodeJS.ErrnoException, socket: Socket) => {
    // A request node:http could not read: too slow, too large, not HTTP. Answer once, in
    // JSON like every error, and close; a reset connection gets nothing.
    if (error.code === 'ECONNRESET' || !socket.writable || (socket as Socket & { _httpMessage?: unknown })._httpMessage) {
      socket.destroy();
      return;
    }
    const [status, code, message] =
      error.code === 'HPE_HEADER_OVERFLOW'
        ? [431, 'HEADERS_TOO_LARGE', `the request's headers exceed ${maxHeaderSize} bytes`]
        : error.code === 'ERR_HTTP_REQUEST_TIMEOUT'
          ? [408, 'REQUEST_TIMEOUT', 'the request was not received in time']
          : [400, 'BAD_REQUEST', 'not a valid HTTP/1.1 request'];
    answerRaw(socket, errorAnswer(status, code, message));
  });
  // CONNECT is handed over as a raw socket (node:http would close it unanswered): it is a
  // method like any other this server does not serve.
  http.on('connect', (_req: IncomingMessage, socket: Socket) => {
    if (!socket.writable) return void socket.destroy();
    const a = errorAnswer(405, 'METHOD_NOT_ALLOWED', 'only GET and HEAD are served');
    answerRaw(socket, { ...a, headers: { ...a.headers, allow: ID_ROUTE_METHODS } });
  });

  /** One answer written on a socket node:http no longer manages, then closed. */
  function answerRaw(socket: Socket, a: HttpAnswer): void {
    const head = [`HTTP/1.1 ${a.status} ${statusText(a.status)}`, ...Object.entries(a.headers).map(([k, v]) => `${k}: ${v}`), `content-length: ${Buffer.byteLength(a.body)}`, 'connection: close'];
    counters.answered('other', a.status);
    socket.end(`${head.join('\r\n')}\r\n\r\n${a.body}`);
  }

  const address = await listenHttp(http, host, port, {
    code: 'HTTP_PORT_IN_USE',
    name: 'HTTP',
    flag: '--http',
    afterListening: (error) => logger.warn({ err: String(error) }, 'HTTP server error'),
  });
  let guard: PortGuard | undefined;
  if (options.guard !== undefined) {
    try {
      guard = await holdPort(address.port, { address: hostPort(address.host, address.port), nodeId: options.guard.nodeId, workers: options.guard.workers }, 'http');
    } catch (error) {
      await new Promise<void>((resolve) => http.close(() => resolve()));
      throw error;
    }
  }
  // In the background: the port is bound and answers meanwhile.
  const warmup = options.warmUp === false ? undefined : warmHttpPath();
  let closed: Promise<void> | undefined;
  return {
    address,
    stats: () => counters.snapshot(),
    warmedUp: warmup?.done ?? Promise.resolve(),
    close(graceMs = DEFAULT_HTTP_CLOSE_GRACE_MS) {
      closed ??= new Promise<void>((resolve) => {
        closing = true;
        warmup?.stop();
        const timer = setTimeout(() => http.closeAllConnections(), graceMs);
        timer.unref();
        http.close(() => {
          clearTimeout(timer);
          void (guard?.close() ?? Promise.resolve()).then(() => resolve());
        });
        // close() closes the connections idle now; a connection whose request is answered
        // while closing is told Connection: close, and node:http ends it after the answer.
        http.closeIdleConnections();
      });
      return closed;
    },
  };
}

function statusText(status: number): string {
  return status === 431 ? 'Request Header Fields Too Large' : status === 408 ? 'Request Timeout' : 'Bad Request';
}
