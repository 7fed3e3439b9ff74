// The id service: answers protocol v1 requests from a crash-safe node over a transport.
//
// Per datagram: one allowlist check, one header parse, (with a key) one HMAC and a
// replay check, one fill() straight into the reply — one clock reading, no BigInt — and
// the reply written over the request, which the transport sends back to its source.
// Anything that is not a valid request is dropped and counted; nothing a datagram
// contains can throw out of the handler.

import type { BlockList } from 'node:net';
import { hostPort, listenPort, resolveHost } from '../address.js';
import { HailstoneError, InvalidArgumentError } from '../errors.js';
import { type NodeLogger, stderrLogger } from '../logger.js';
import type { HailstoneNode } from '../node/node.js';
import type { FleetStats, NodeSource } from '../node/source.js';
import { LiveNode } from './live-node.js';
import { Authenticator } from '../protocol/auth.js';
import { ReplayGuard } from '../protocol/replay-guard.js';
import {
  type DropReason,
  type RequestHeader,
  HEADER_SIZE,
  PARSE_BAD_REQUEST,
  PARSE_DROP,
  STATUS_BAD_REQUEST,
  STATUS_OK,
  STATUS_UNAVAILABLE,
  TAG_SIZE,
  parseRequest,
  writeReplyOverRequest,
} from '../protocol/wire.js';
import { parseAllowList } from './allow-list.js';
import { bindError } from './bind-error.js';
import type { ServeCommonOptions, Server, ServerStats, ServingNode } from './api.js';
import { type PortGuard, holdPort } from './port-guard.js';
import { RateLimiter } from './rate-limit.js';
import { createTransport } from './select-transport.js';
import type { DatagramSource, Transport } from './transport.js';

export const DEFAULT_HOST = '127.0.0.1';
export const DEFAULT_PORT = 7077;
export const DEFAULT_REPLAY_WINDOW_MS = 30_000;
export type { ServeCommonOptions, Server, ServerStats, ServingNode } from './api.js';

/** The node a server made by serve() answers from, for HTTP to answer from the same one. */
export function servingNodeOf(server: Server): ServingNode {
  if (!(server instanceof IdServer)) throw new InvalidArgumentError('server', 'must be a server made by serve()');
  return server.live;
}

class IdServer implements Server {
  address: { host: string; port: number } = { host: '', port: 0 };
  private readonly counters: Omit<ServerStats, 'transport'> = {
    datagrams: 0,
    requests: 0,
    idsServed: 0,
    replies: { ok: 0, unavailable: 0, unavailableStarting: 0, badRequest: 0 },
    dropped: { malformed: 0, unauthenticated: 0, stale: 0, replayed: 0, not_allowed: 0, rate_limited: 0 },
  };
  private readonly header: RequestHeader = { tagged: false, count: 0, nonceHigh: 0, nonceLow: 0, clientTimeMs: 0 };
  private closing: Promise<void> | undefined;
  /** One server per port: held from the bind until the socket is closed. */
  private guard: PortGuard | undefined;
  // Refusals are logged as episodes: at most one line per 10 s, with how many were refused.
  private lastRefusalLog = -Infinity;
  private refusedSinceLog = 0;

  /** The node it answers from (shared with HTTP, if served): closed with the server. */
  readonly live: LiveNode;
  private readonly transport: Transport;
  private readonly auths: Authenticator[];
  private readonly replay: ReplayGuard | undefined;
  private readonly allow: BlockList | undefined;
  private readonly limiter: RateLimiter | undefined;
  private readonly logger: NodeLogger;

  constructor(init: { live: LiveNode; transport: Transport; auths: Authenticator[]; replay: ReplayGuard | undefined; allow: BlockList | undefined; limiter: RateLimiter | undefined; logger: NodeLogger }) {
    ({ live: this.live, transport: this.transport, auths: this.auths, replay: this.replay, allow: this.allow, limiter: this.limiter, logger: this.logger } = init);
  }

  get failed(): Promise<HailstoneError> {
    return this.live.failed;
  }

  get node(): HailstoneNode {
    const node = this.live.node();
    if (node === undefined) throw new HailstoneError('CLOSED', 'the server has not finished starting');
    return node;
  }

  async listen(host: string, port: number): Promise<void> {
    let bound: { address: string; port: number };
    try {
      bound = await this.transport.listen(host, port, (buf, offset, length, from) => this.onDatagram(buf, offset, length, from));
    } catch (error) {
      throw await bindError(error, host, port);
    }
    this.address = { host: bound.address, port: bound.port };
  }

  stats(): ServerStats {
    const c = this.counters;
    return { ...c, replies: { ...c.replies }, dropped: { ...c.dropped }, transport: { name: this.transport.name, ...this.transport.stats() } };
  }

  fleetStats(): FleetStats | undefined {
    return this.live.fleetStats();
  }

  /** Holds the port's guard until the socket is closed. */
  guardPort(guard: PortGuard): void {
    this.guard = guard;
  }

  close(): Promise<void> {
    this.closing ??= (async () => {
      await this.transport.close();
      await this.guard?.close();
      await this.live.close();
    })();
    return this.closing;
  }

  private drop(reason: DropReason): number {
    this.counters.dropped[reason]++;
    return 0;
  }

  private onDatagram(buf: Buffer, offset: number, length: number, from: DatagramSource): number {
    try {
      return this.answer(buf, offset, length, from);
    } catch (error) {
      // Not reachable by input (every path above is checked), but a bug must cost one
      // datagram, not the process.
      this.drop('malformed');
      this.logger.error({ err: String(error) }, 'unexpected error while answering a datagram');
      return 0;
    }
  }

  /** Answers the request in buf[offset, offset + length) in place; returns the reply's length (0: none). */
  private answer(buf: Buffer, offset: number, length: number, from: DatagramSource): number {
    const c = this.counters;
    c.datagrams++;
    if (this.allow !== undefined && !this.allow.check(from.address, from.family === 'IPv6' ? 'ipv6' : 'ipv4')) {
      return this.drop('not_allowed');
    }
    if (this.limiter !== undefined && !this.limiter.allow(from.address, Date.now())) return this.drop('rate_limited');
    const h = this.header;
    const parsed = parseRequest(buf, h, offset, length);
    if (parsed === PARSE_DROP) return this.drop('malformed');
    let auth: Authenticator | undefined;
    if (this.auths.length > 0) {
      const msg = buf.subarray(offset, offset + length);
      if (h.tagged) auth = this.auths.length === 1 ? (this.auths[0]!.verify(msg) ? this.auths[0] : undefined) : this.auths.find((a) => a.verify(msg));
      if (auth === undefined) return this.drop('unauthenticated');
      const verdict = this.replay!.check(h.nonceHigh, h.nonceLow, h.clientTimeMs, Date.now());
      if (verdict !== 'ok') return this.drop(verdict);
    }
    c.requests++;
    if (parsed === PARSE_BAD_REQUEST) {
      c.replies.badRequest++;
      return this.reply(buf, offset, STATUS_BAD_REQUEST, 0, 0, auth);
    }
    const node = this.live.node();
    if (node === undefined) {
      // Still opening (a first start waits out one lead window): say for how long.
      c.replies.unavailable++;
      c.replies.unavailableStarting++;
      return this.reply(buf, offset, STATUS_UNAVAILABLE, 0, this.live.retryAfterMs(), auth);
    }
    // The ids go straight into the reply, over the request's padding: a full answer is
    // exactly as large as the request, never larger.
    // tryFill: a refusal under overload must cost no more than an answer, so no exception.
    const n = node.tryFill(buf, offset + HEADER_SIZE, h.count);
    if (n < 0) {
      c.replies.unavailable++;
      this.noteRefusal(node, n);
      return this.reply(buf, offset, STATUS_UNAVAILABLE, 0, this.live.retryAfterMs(n), auth);
    }
    c.replies.ok++;
    c.idsServed += n;
    return this.reply(buf, offset, STATUS_OK, n, 0, auth);
  }

  private noteRefusal(node: HailstoneNode, status: number): void {
    this.refusedSinceLog++;
    const now = Date.now();
    if (now - this.lastRefusalLog < 10_000) return;
    const error = node.refusalOf(status);
    this.logger.warn(
      { code: error.code, retryAfterMs: error.retryAfterMs, refused: this.refusedSinceLog, sinceMs: Number.isFinite(this.lastRefusalLog) ? now - this.lastRefusalLog : 0 },
      `answering UNAVAILABLE: ${error.message}`,
    );
    this.lastRefusalLog = now;
    this.refusedSinceLog = 0;
  }

  /** Writes the reply header (and tag) over the request; returns the reply's length. */
  private reply(buf: Buffer, offset: number, status: number, count: number, retryAfterMs: number, auth: Authenticator | undefined): number {
    const length = HEADER_SIZE + 8 * count + (auth !== undefined ? TAG_SIZE : 0);
    writeReplyOverRequest(buf, offset, status, count, retryAfterMs, auth !== undefined);
    if (auth !== undefined) auth.sign(buf.subarray(offset, offset + length), length);
    return length;
  }
}

/**
 * Starts an id server over a node source: binds the socket first (a taken port fails at
 * once), then starts the source — answering UNAVAILABLE while it opens the node — and
 * resolves once ids are served. The source is closed with the server, or at once if the
 * server cannot start. (`serve()` picks the source from its options.) Given a LiveNode,
 * the server answers from it beside another front end (HTTP) that answers from it too.
 */
export async function startServer(options: ServeCommonOptions, source: NodeSource | LiveNode): Promise<Server> {
  const live = source instanceof LiveNode ? source : new LiveNode(source);
  let server: IdServer | undefined;
  try {
    const host = await resolveHost(options.host ?? DEFAULT_HOST);
    const port = options.port ?? DEFAULT_PORT;
    listenPort(port);
    const keys = [...(options.key === undefined ? [] : [options.key]), ...(options.keys ?? [])];
    const auths = keys.map((k) => new Authenticator(k));
    const replayWindowMs = options.replayWindowMs ?? DEFAULT_REPLAY_WINDOW_MS;
    const allow = options.allow === undefined || options.allow.length === 0 ? undefined : parseAllowList(options.allow);
    const logger = options.logger ?? stderrLogger;
    // Chosen before anything else: asking for an unavailable transport fails without
    // touching the state directory.
    const choice = options.transport ?? 'auto';
    const transport = typeof choice === 'string' ? createTransport(choice, { reusePort: options.reusePort ?? false, logger }) : choice;
    server = new IdServer({
      live,
      transport,
      auths,
      replay: auths.length === 0 ? undefined : new ReplayGuard(replayWindowMs),
      allow,
      limiter: options.rateLimit === undefined ? undefined : new RateLimiter(options.rateLimit),
      logger,
    });
    await server.listen(host, port);
    if (options.reusePort !== true) {
      server.guardPort(await holdPort(server.address.port, { address: hostPort(server.address.host, server.address.port), nodeId: live.nodeId, workers: 1 }));
    }
    options.onListening?.(server);
    const { address } = server;
    await live.start({ logger, address: () => hostPort(address.host, address.port), ...(options.onStartupWait === undefined ? {} : { onStartupWait: options.onStartupWait }) });
    return server;
  } catch (error) {
    // Closing the server closes the node; without a server, close it alone.
    if (server !== undefined) await server.close();
    else await live.close();
    throw error;
  }
}
