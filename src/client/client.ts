// The client: asks hailstone servers for ids over protocol v1.
//
// Each request carries a fresh random nonce. A reply is accepted only from the server the
// request went to, only for a nonce still outstanding, only with a valid tag when a key
// is configured, and only if its ids are plausible; then the nonce is retired, so a
// duplicated or late reply is never used twice. Lost requests are retried with a new
// nonce, with exponential backoff and jitter, across the servers, until a deadline.

import { randomFillSync } from 'node:crypto';
import { type Socket, createSocket } from 'node:dgram';
import { isIPv6 } from 'node:net';
import { HailstoneError, InvalidArgumentError, checkInteger, describe } from '../errors.js';
import { DEFAULT_LAYOUT, type Layout } from '../layout.js';
import { Authenticator } from '../protocol/auth.js';
import { type NodeIdConflict, NodeIdConflictDetector, describeConflict } from './conflicts.js';
import {
  HEADER_SIZE,
  MAX_IDS_PER_REQUEST,
  STATUS_BAD_REQUEST,
  STATUS_OK,
  parseReply,
  requestSize,
  writeRequestHeader,
} from '../protocol/wire.js';

export interface ClientOptions {
  /** "host:port" (or "[v6]:port"); requests fail over across them in order. */
  servers: string[];
  /** The servers' shared key; replies must then carry a valid tag. */
  key?: Uint8Array;
  /** How long to wait for one reply before retrying. Default 250 ms. */
  timeoutMs?: number;
  /** How many requests that got no reply at all are retried. Default 8. (UNAVAILABLE is waited on until the deadline.) */
  retries?: number;
  /** Each call rejects after this long at the latest. Default 3000 ms. */
  deadlineMs?: number;
  /** The servers' layout, to check ids in replies. Default: the default layout. */
  layout?: Layout;
  /** How far past this client's clock an id's timestamp may be. Default 1 day. */
  maxFutureMs?: number;
  /**
   * Called once for each pair of servers seen issuing ids under one node id at the same
   * time (a configuration error: their ids can collide). Default: `process.emitWarning`
   * with code HAILSTONE_NODE_ID_CONFLICT.
   */
  onNodeIdConflict?: (conflict: NodeIdConflict) => void;
}

export interface ClientStats {
  requests: number;
  timeouts: number;
  unavailable: number;
  /** Datagrams dropped: unknown nonce, wrong sender, bad tag, malformed or implausible. */
  rejectedReplies: number;
  /** Pairs of servers seen issuing under one node id at the same time (see onNodeIdConflict). */
  nodeIdConflicts: number;
}

export interface Client {
  nextId(): Promise<bigint>;
  nextIds(count: number): Promise<bigint[]>;
  stats(): ClientStats;
  close(): Promise<void>;
}

interface Endpoint {
  host: string;
  port: number;
  text: string;
}

type Outcome =
  | { kind: 'ok'; ids: bigint[] }
  | { kind: 'unavailable'; retryAfterMs: number }
  | { kind: 'bad_request' }
  | { kind: 'timeout' };

interface Pending {
  endpoint: Endpoint;
  count: number;
  settle: (outcome: Outcome) => void;
}

export function parseEndpoint(text: string): Endpoint {
  const m = /^\[([^\]]+)\]:(\d+)$/.exec(text) ?? /^([^:]+):(\d+)$/.exec(text);
  const port = m === null ? NaN : Number(m[2]);
  if (m === null || !Number.isInteger(port) || port < 1 || port > 65535) {
    throw new InvalidArgumentError('servers', `${describe(text)} is not host:port (e.g. 127.0.0.1:7077 or [::1]:7077)`);
  }
  return { host: m[1]!, port, text };
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

class IdClient implements Client {
  private readonly endpoints: Endpoint[];
  private readonly auth: Authenticator | undefined;
  private readonly timeoutMs: number;
  private readonly retries: number;
  private readonly deadlineMs: number;
  private readonly layout: Layout;
  private readonly maxFutureMs: number;
  private readonly sockets = new Map<'udp4' | 'udp6', Socket>();
  private readonly pending = new Map<bigint, Pending>();
  private readonly counters = { requests: 0, timeouts: 0, unavailable: 0, rejectedReplies: 0 };
  private readonly conflicts: NodeIdConflictDetector;
  private next = 0;
  private closed = false;

  constructor(options: ClientOptions) {
    if (!Array.isArray(options?.servers) || options.servers.length === 0) {
      throw new InvalidArgumentError('servers', 'must list at least one "host:port"');
    }
    this.endpoints = options.servers.map(parseEndpoint);
    this.auth = options.key === undefined ? undefined : new Authenticator(options.key);
    this.timeoutMs = checkInteger('timeoutMs', options.timeoutMs ?? 250, 1, 600_000);
    this.retries = checkInteger('retries', options.retries ?? 8, 0, 1000);
    this.deadlineMs = checkInteger('deadlineMs', options.deadlineMs ?? 3000, 1, 3_600_000);
    this.layout = options.layout ?? DEFAULT_LAYOUT;
    this.maxFutureMs = checkInteger('maxFutureMs', options.maxFutureMs ?? 86_400_000, 0, 365 * 86_400_000);
    if (options.onNodeIdConflict !== undefined && typeof options.onNodeIdConflict !== 'function') {
      throw new InvalidArgumentError('onNodeIdConflict', 'must be a function');
    }
    const layout = this.layout;
    this.conflicts = new NodeIdConflictDetector(
      (tick) => layout.epoch + tick * layout.tickMs,
      options.onNodeIdConflict ?? ((c) => process.emitWarning(describeConflict(c), { code: 'HAILSTONE_NODE_ID_CONFLICT' })),
    );
  }

  stats(): ClientStats {
    return { ...this.counters, nodeIdConflicts: this.conflicts.count };
  }

  async nextId(): Promise<bigint> {
    return (await this.nextIds(1))[0]!;
  }

  async nextIds(count: number): Promise<bigint[]> {
    checkInteger('count', count, 1, 1_000_000);
    const deadline = Date.now() + this.deadlineMs;
    const batches: Promise<bigint[]>[] = [];
    for (let left = count; left > 0; left -= MAX_IDS_PER_REQUEST) {
      batches.push(this.batch(Math.min(left, MAX_IDS_PER_REQUEST), deadline));
    }
    return (await Promise.all(batches)).flat();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const p of this.pending.values()) p.settle({ kind: 'timeout' });
    this.pending.clear();
    await Promise.all([...this.sockets.values()].map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
    this.sockets.clear();
  }

  /** `count` ids, asking again for what a reply left short, until the deadline. */
  private async batch(count: number, deadline: number): Promise<bigint[]> {
    const ids: bigint[] = [];
    let attempt = 0; // exchanges in this call that gave no ids
    let lost = 0; // of them, the ones that got no reply at all: bounded by `retries`
    let last = 'no reply';
    let server = this.next++ % this.endpoints.length;
    while (ids.length < count) {
      if (this.closed) throw new HailstoneError('CLOSED', 'the client was closed');
      const left = deadline - Date.now();
      if (left <= 0 || lost > this.retries) {
        throw new HailstoneError(
          'TIMEOUT',
          `no ids from ${this.endpoints.map((e) => e.text).join(', ')} after ${attempt} attempt(s) ` +
            `(last: ${last}); check that the servers run${this.auth ? ' and share this key' : ''}`,
        );
      }
      const endpoint = this.endpoints[server % this.endpoints.length]!;
      const outcome = await this.exchange(endpoint, count - ids.length, Math.min(this.timeoutMs, left));
      if (outcome.kind === 'ok') {
        ids.push(...outcome.ids);
        attempt = lost = 0;
        continue;
      }
      attempt++;
      if (outcome.kind === 'bad_request') {
        throw new HailstoneError('BAD_REPLY', `${endpoint.text} answered BAD_REQUEST: it does not speak this client's protocol version or limits`);
      }
      if (outcome.kind === 'unavailable') {
        this.counters.unavailable++;
        last = `${endpoint.text} unavailable, retry after ${outcome.retryAfterMs} ms`;
        if (outcome.retryAfterMs >= deadline - Date.now()) {
          throw new HailstoneError('UNAVAILABLE', `${last}, past this call's deadline`, { retryAfterMs: outcome.retryAfterMs });
        }
        // Another server may answer at once; a lone server is waited for as it asked.
        server++;
        await sleep(this.endpoints.length > 1 ? 0 : Math.max(1, outcome.retryAfterMs));
        continue;
      }
      lost++;
      this.counters.timeouts++;
      last = `no reply from ${endpoint.text} within ${this.timeoutMs} ms`;
      server++;
      // Exponential backoff with full jitter, capped by the deadline.
      const backoff = Math.random() * Math.min(1000, 10 * 2 ** lost);
      await sleep(Math.min(backoff, Math.max(0, deadline - Date.now())));
    }
    return ids;
  }

  private socketFor(endpoint: Endpoint): Socket {
    const type = isIPv6(endpoint.host) ? 'udp6' : 'udp4';
    let socket = this.sockets.get(type);
    if (socket === undefined) {
      socket = createSocket(type);
      socket.on('message', (msg, rinfo) => this.onReply(msg, rinfo.address, rinfo.port));
      socket.on('error', () => undefined); // ICMP errors: the attempt times out and is retried
      socket.unref();
      this.sockets.set(type, socket);
    }
    return socket;
  }

  private exchange(endpoint: Endpoint, count: number, timeoutMs: number): Promise<Outcome> {
    const tagged = this.auth !== undefined;
    const size = requestSize(count, tagged); // padded: the reply can be as large as the request
    const buf = Buffer.alloc(size);
    const nonce = randomFillSync(Buffer.allocUnsafe(8));
    const key = nonce.readBigUInt64BE(0);
    if (this.pending.has(key)) return Promise.resolve({ kind: 'timeout' }); // 2^-64: just try again
    writeRequestHeader(buf, count, nonce, Date.now(), tagged);
    if (tagged) this.auth!.sign(buf, size);
    this.counters.requests++;
    return new Promise<Outcome>((resolve) => {
      const timer = setTimeout(() => {
        // Retire the nonce: a late reply to it is dropped, its ids never handed out.
        this.pending.delete(key);
        resolve({ kind: 'timeout' });
      }, timeoutMs);
      this.pending.set(key, {
        endpoint,
        count,
        settle: (outcome) => {
          clearTimeout(timer);
          resolve(outcome);
        },
      });
      this.socketFor(endpoint).send(buf, endpoint.port, endpoint.host);
    });
  }

  private onReply(msg: Buffer, address: string, port: number): void {
    const reject = () => {
      this.counters.rejectedReplies++;
    };
    const header = parseReply(msg);
    if (header === undefined) return reject();
    const key = msg.readBigUInt64BE(8);
    const p = this.pending.get(key);
    if (p === undefined || p.endpoint.port !== port || !sameHost(p.endpoint.host, address)) return reject();
    if (this.auth !== undefined && (!header.tagged || !this.auth.verify(msg))) return reject();
    if (header.status === STATUS_OK) {
      if (header.count < 1 || header.count > p.count) return reject();
      const ids = this.plausibleIds(msg, header.count);
      if (ids === undefined) return reject();
      this.pending.delete(key);
      this.noteOrigin(address, port, ids);
      return p.settle({ kind: 'ok', ids });
    }
    this.pending.delete(key);
    p.settle(header.status === STATUS_BAD_REQUEST ? { kind: 'bad_request' } : { kind: 'unavailable', retryAfterMs: header.retryAfterMs });
  }

  /** Which node issued these ids, from where, when: for the node id conflict check. */
  private noteOrigin(address: string, port: number, ids: bigint[]): void {
    const l = this.layout;
    const shift = BigInt(l.nodeBits + l.sequenceBits);
    const nodeId = Number((ids[0]! >> BigInt(l.sequenceBits)) & ((1n << BigInt(l.nodeBits)) - 1n));
    const host = address.startsWith('::ffff:') ? address.slice(7) : address;
    const origin = host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
    this.conflicts.observe(origin, nodeId, Number(ids[0]! >> shift), Number(ids[ids.length - 1]! >> shift));
  }

  /** The reply's ids, or undefined when they cannot be genuine: not increasing, mixed nodes, absurd times. */
  private plausibleIds(msg: Buffer, count: number): bigint[] | undefined {
    const l = this.layout;
    const shift = BigInt(l.nodeBits + l.sequenceBits);
    const nodeMask = (1n << BigInt(l.nodeBits)) - 1n;
    const limit = 1n << BigInt(l.timeBits + l.nodeBits + l.sequenceBits);
    const latest = Date.now() + this.maxFutureMs;
    const ids = new Array<bigint>(count);
    let node = -1n;
    for (let i = 0; i < count; i++) {
      const id = msg.readBigUInt64BE(HEADER_SIZE + 8 * i);
      if (id >= limit || (i > 0 && id <= ids[i - 1]!)) return undefined;
      const n = (id >> BigInt(l.sequenceBits)) & nodeMask;
      if (i === 0) node = n;
      else if (n !== node) return undefined;
      if (l.epoch + Number(id >> shift) * l.tickMs > latest) return undefined;
      ids[i] = id;
    }
    return ids;
  }
}

function sameHost(expected: string, actual: string): boolean {
  if (expected === actual) return true;
  if (expected === 'localhost') return actual === '127.0.0.1' || actual === '::1';
  return actual.startsWith('::ffff:') && actual.slice(7) === expected;
}

export type { NodeIdConflict } from './conflicts.js';

export function createClient(options: ClientOptions): Client {
  return new IdClient(options);
}
