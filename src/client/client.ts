// The client: asks hailstone servers for ids over protocol v1.
//
// Each request carries a fresh random nonce. A reply is accepted only from the server the
// request went to, only for a nonce still outstanding, only with a valid tag when a key
// is configured, and only if its ids are plausible; then the nonce is retired, so a
// duplicated or late reply is never used twice. Lost requests are retried with a new
// nonce, with exponential backoff and jitter, across the servers, until a deadline.
//
// Servers may be named by host name: a name is resolved (all its addresses, IPv4 first),
// replies are accepted from any of them, and it is resolved again after a request to it
// got no reply.
//
// Each server address gets its own connected socket: Linux reports an ICMP port
// unreachable only to a connected UDP socket (as ECONNREFUSED), so a server address with
// nothing listening is known at once instead of after a timeout. Such a server is skipped
// for the rest of the batch; when every server has refused, the call fails with
// UNREACHABLE at once. A server that answered UNAVAILABLE is not asked again before its
// retry-after; when every server has asked to wait, the call waits (with jitter) for the
// first of them, and one batch sends at most `maxAttempts` requests that bring no ids.

import { randomFillSync } from 'node:crypto';
import { type Socket, createSocket } from 'node:dgram';
import { lookup as dnsLookup } from 'node:dns/promises';
import { isIP, isIPv6 } from 'node:net';
import { hostPort, parseHostPort } from '../address.js';
import { HailstoneError, InvalidArgumentError, checkInteger, describe } from '../errors.js';
import { DEFAULT_LAYOUT, type Layout, timestampOf } from '../layout.js';
import { Authenticator } from '../protocol/auth.js';
import type { EtcdOptions } from '../fleet/etcd.js';
import { type NodeIdConflict, NodeIdConflictDetector, describeConflict } from './conflicts.js';
import { FleetDiscovery } from './discovery.js';
import { IdPool, type PoolOptions, type PoolStats } from './pool.js';
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
  /** "host:port" (or "[v6]:port"); requests fail over across them in order. Optional with `etcd`. */
  servers?: string[];
  /** Fleet mode: find the live servers of `cluster` in etcd (and follow them with a watch). */
  etcd?: EtcdOptions;
  /** Fleet mode: the cluster's name. Default "default". */
  cluster?: string;
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
  /** Resolves a server's host name to its addresses. Default: Node's dns.lookup (all addresses). */
  lookup?: (hostname: string) => Promise<string[]>;
  /** Requests one batch may send that bring no ids (timeouts and UNAVAILABLE answers together). Default 32. */
  maxAttempts?: number;
  /**
   * Opt-in: nextId() takes ids fetched ahead in batches (see IdPool): no round trip per id.
   * Ids older than maxAgeMs are dropped, and close() discards the rest — gaps, never reuse.
   */
  pool?: PoolOptions;
}

export interface ClientStats {
  requests: number;
  timeouts: number;
  unavailable: number;
  /** Datagrams dropped: unknown nonce, wrong sender, bad tag, malformed or implausible. */
  rejectedReplies: number;
  /** Pairs of servers seen issuing under one node id at the same time (see onNodeIdConflict). */
  nodeIdConflicts: number;
  /** With a pool: ids held, refills, ids dropped for age or discarded. */
  pool?: PoolStats;
}

export interface Client {
  /** One id: from the pool when there is one, else one round trip. */
  nextId(): Promise<bigint>;
  /** With a pool: an id at once, or undefined when the pool is empty (a refill is then under way). */
  takeId(): bigint | undefined;
  nextIds(count: number): Promise<bigint[]>;
  stats(): ClientStats;
  close(): Promise<void>;
}

interface Endpoint {
  host: string;
  port: number;
  text: string;
  /** The addresses it resolved to (an IP literal: itself); undefined until resolved, or when stale. */
  addresses: string[] | undefined;
  /** Which of them the next request goes to. */
  nextAddress: number;
  /** Asked to wait (UNAVAILABLE) until then, Date.now() ms. */
  notBefore: number;
}

type Outcome =
  | { kind: 'ok'; ids: bigint[] }
  | { kind: 'unavailable'; retryAfterMs: number }
  | { kind: 'bad_request' }
  /** ICMP port unreachable: nothing listens at that address and port. */
  | { kind: 'refused'; address: string }
  | { kind: 'timeout'; rejected?: string };

/** A socket connected to one server address. */
interface Peer {
  socket: Socket;
  /** Settles once connect() did: requests are sent after it. */
  connected: Promise<void>;
}

interface Pending {
  endpoint: Endpoint;
  /** The peer (see peerKey) the request went to. */
  peer: string;
  count: number;
  /** Why a reply to this request was dropped, if one was: said when the request times out. */
  rejected?: string;
  settle: (outcome: Outcome) => void;
}

export function parseEndpoint(text: string): Endpoint {
  const { host, port } = parseHostPort('servers', text);
  return { host, port, text, addresses: isIP(host) === 0 ? undefined : [host], nextAddress: 0, notBefore: 0 };
}

async function defaultLookup(hostname: string): Promise<string[]> {
  return (await dnsLookup(hostname, { all: true })).map((a) => a.address);
}

/** The address as a reply's source shows it (an IPv4-mapped IPv6 address as IPv4). */
function plainAddress(address: string): string {
  return address.startsWith('::ffff:') && isIP(address.slice(7)) === 4 ? address.slice(7) : address;
}

/** Requests one nextIds() call keeps outstanding at most. */
const MAX_IN_FLIGHT = 16;

/** What an UNREACHABLE error says: the servers that answered with ICMP port unreachable. */
function nothingListening(endpoints: Endpoint[]): string {
  return `nothing listening on ${endpoints.map((e) => e.text).join(', ')} (ICMP port unreachable)`;
}

function peerKey(address: string, port: number): string {
  return `${address} ${port}`;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

class IdClient implements Client {
  private endpoints: Endpoint[];
  private readonly discovery: FleetDiscovery | undefined;
  private readonly pool: IdPool | undefined;
  private readonly auth: Authenticator | undefined;
  private readonly timeoutMs: number;
  private readonly retries: number;
  private readonly deadlineMs: number;
  private readonly layout: Layout;
  private readonly maxFutureMs: number;
  private readonly maxAttempts: number;
  private readonly lookup: (hostname: string) => Promise<string[]>;
  private readonly peers = new Map<string, Peer>();
  private readonly pending = new Map<bigint, Pending>();
  private readonly counters = { requests: 0, timeouts: 0, unavailable: 0, rejectedReplies: 0 };
  private readonly conflicts: NodeIdConflictDetector;
  private next = 0;
  private closed = false;
  /** Resolves when close() is called: a request waiting for its socket to connect stops waiting. */
  private readonly whenClosed: Promise<void>;
  private markClosed: () => void = () => undefined;

  constructor(options: ClientOptions) {
    this.whenClosed = new Promise((resolve) => {
      this.markClosed = resolve;
    });
    if (options?.etcd === undefined && (!Array.isArray(options?.servers) || options.servers.length === 0)) {
      throw new InvalidArgumentError('servers', 'must list at least one "host:port" (or give etcd to find the servers of a fleet)');
    }
    this.endpoints = (options.servers ?? []).map(parseEndpoint);
    this.discovery =
      options.etcd === undefined
        ? undefined
        : new FleetDiscovery(
            { etcd: options.etcd, cluster: options.cluster },
            (list) => this.setServers(list),
            (key, info, why) =>
              process.emitWarning(`the fleet's claim ${key} (host ${info.host ?? '?'}, pid ${info.pid ?? '?'}) names udp ${info.udp}: ${why}; that server is passed over — start it with --advertise HOST:PORT`, {
                code: 'HAILSTONE_UNUSABLE_ADDRESS',
              }),
          );
    this.auth = options.key === undefined ? undefined : new Authenticator(options.key);
    this.timeoutMs = checkInteger('timeoutMs', options.timeoutMs ?? 250, 1, 600_000);
    this.retries = checkInteger('retries', options.retries ?? 8, 0, 1000);
    this.deadlineMs = checkInteger('deadlineMs', options.deadlineMs ?? 3000, 1, 3_600_000);
    this.layout = options.layout ?? DEFAULT_LAYOUT;
    this.maxFutureMs = checkInteger('maxFutureMs', options.maxFutureMs ?? 86_400_000, 0, 365 * 86_400_000);
    this.maxAttempts = checkInteger('maxAttempts', options.maxAttempts ?? 32, 1, 100_000);
    for (const name of ['onNodeIdConflict', 'lookup'] as const) {
      if (options[name] !== undefined && typeof options[name] !== 'function') throw new InvalidArgumentError(name, 'must be a function');
    }
    this.lookup = options.lookup ?? defaultLookup;
    this.pool = options.pool === undefined ? undefined : new IdPool((n) => this.nextIds(n), options.pool);
    this.conflicts = new NodeIdConflictDetector(
      (tick) => timestampOf(this.layout, tick),
      options.onNodeIdConflict ?? ((c) => process.emitWarning(describeConflict(c), { code: 'HAILSTONE_NODE_ID_CONFLICT' })),
    );
  }

  stats(): ClientStats {
    return { ...this.counters, nodeIdConflicts: this.conflicts.count, ...(this.pool === undefined ? {} : { pool: this.pool.stats() }) };
  }

  async nextId(): Promise<bigint> {
    if (this.pool !== undefined) return this.pool.next();
    return (await this.nextIds(1))[0]!;
  }

  takeId(): bigint | undefined {
    return this.pool?.take();
  }

  async nextIds(count: number): Promise<bigint[]> {
    checkInteger('count', count, 1, 1_000_000);
    const deadline = Date.now() + this.deadlineMs;
    if (this.discovery !== undefined) await this.discovered(deadline);
    const sizes: number[] = [];
    for (let left = count; left > 0; left -= MAX_IDS_PER_REQUEST) sizes.push(Math.min(left, MAX_IDS_PER_REQUEST));
    // At most MAX_IN_FLIGHT requests of one call at a time: a burst of hundreds of datagrams
    // overflows socket buffers on the way, and every loss costs a timeout.
    const results = new Array<bigint[]>(sizes.length);
    let next = 0;
    await Promise.all(
      Array.from({ length: Math.min(MAX_IN_FLIGHT, sizes.length) }, async () => {
        while (next < sizes.length) {
          const i = next++;
          results[i] = await this.batch(sizes[i]!, deadline);
        }
      }),
    );
    return results.flat();
  }

  /** Fleet mode: the servers etcd lists now (given ones included). */
  private setServers(list: string[]): void {
    const byText = new Map(this.endpoints.map((e) => [e.text, e]));
    this.endpoints = list.map((text) => byText.get(text) ?? parseEndpoint(text));
    // Servers that left the fleet: their sockets go too, once nothing waits on them.
    const listed = new Set(this.endpoints.flatMap((e) => (e.addresses ?? []).map((a) => peerKey(a, e.port))));
    const waiting = new Set([...this.pending.values()].map((p) => p.peer));
    for (const [key, peer] of this.peers) {
      if (listed.has(key) || waiting.has(key)) continue;
      this.peers.delete(key);
      peer.socket.close();
    }
  }

  private async discovered(deadline: number): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        this.discovery!.ready,
        new Promise((_, reject) => {
          timer = setTimeout(() => reject(new Error('etcd did not answer in time')), Math.max(1, deadline - Date.now()));
        }),
      ]);
    } catch (error) {
      const refused = this.discovery!.refusal(error);
      if (refused !== undefined) throw new HailstoneError('COORDINATOR_REFUSED', `cannot list the fleet's servers: ${refused}`);
      throw new HailstoneError('UNAVAILABLE', `cannot list the fleet's servers: ${(error as Error).message}; check --etcd`, { retryAfterMs: 1000 });
    } finally {
      clearTimeout(timer);
    }
    if (this.endpoints.length === 0) throw new HailstoneError('UNAVAILABLE', 'no live servers in the fleet (no claims in etcd): start one', { retryAfterMs: 1000 });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.pool?.close();
    this.closed = true;
    this.markClosed();
    await this.discovery?.close();
    for (const p of this.pending.values()) p.settle({ kind: 'timeout' });
    this.pending.clear();
    await Promise.all([...this.peers.values()].map((p) => new Promise<void>((resolve) => p.socket.close(() => resolve()))));
    this.peers.clear();
  }

  /** `count` ids, asking again for what a reply left short, until the deadline. */
  private async batch(count: number, deadline: number): Promise<bigint[]> {
    const ids: bigint[] = [];
    let attempts = 0; // requests in this call that brought no ids: bounded by maxAttempts
    let lost = 0; // of them, the ones that got no reply at all: bounded by `retries`
    let waits = 0; // times every server had asked to wait
    let last = 'no reply';
    // Server addresses with nothing listening (ICMP port unreachable), per server.
    const refused = new Map<Endpoint, Set<string>>();
    const isRefused = (e: Endpoint) => {
      const dead = refused.get(e);
      return dead !== undefined && e.addresses !== undefined && e.addresses.every((a) => dead.has(a));
    };
    // Which server this batch asks first (round robin over calls); the list may change under
    // fleet discovery, so it is taken modulo its length at each use.
    let server = this.next++;
    while (ids.length < count) {
      if (this.closed) throw new HailstoneError('CLOSED', 'the client was closed');
      if (Date.now() >= deadline || lost > this.retries || attempts >= this.maxAttempts) throw this.givingUp(attempts, last, refused);
      if (this.endpoints.length === 0) {
        // A fleet whose servers all went away: wait for one to claim.
        last = 'no live servers in the fleet';
        await sleep(Math.min(50, Math.max(1, deadline - Date.now())));
        continue;
      }
      const live = this.endpoints.filter((e) => !isRefused(e));
      if (live.length === 0) {
        // Nothing listens at any server: with a fixed list, waiting out the deadline cannot
        // help. A fleet's list follows etcd: a dead server's claim goes, a new one comes.
        if (this.discovery === undefined || Date.now() + 50 >= deadline) throw this.unreachable(refused);
        last = nothingListening([...refused.keys()]);
        await sleep(50);
        continue;
      }
      // The next server that has not refused or asked to wait; if all have asked, wait for the first of them.
      const now = Date.now();
      let endpoint: Endpoint | undefined;
      for (let i = 0; i < this.endpoints.length && endpoint === undefined; i++) {
        const candidate = this.endpoints[(server + i) % this.endpoints.length]!;
        if (candidate.notBefore <= now && !isRefused(candidate)) {
          endpoint = candidate;
          server += i;
        }
      }
      if (endpoint === undefined) {
        const soonest = Math.min(...live.map((e) => e.notBefore));
        // Exponential backoff with jitter on top of what the servers asked, so clients that
        // were all refused at once do not all come back in the same millisecond.
        const wait = soonest - now + Math.random() * Math.min(1000, 5 * 2 ** waits++);
        if (now + wait >= deadline) {
          throw new HailstoneError('UNAVAILABLE', `${last}, past this call's deadline`, { retryAfterMs: Math.max(1, soonest - now) });
        }
        await sleep(wait);
        continue;
      }
      const outcome = await this.exchange(endpoint, count - ids.length, Math.min(this.timeoutMs, deadline - Date.now()));
      if (outcome.kind === 'ok') {
        ids.push(...outcome.ids);
        attempts = lost = waits = 0;
        continue;
      }
      attempts++;
      if (outcome.kind === 'refused') {
        // The next request to this server goes to its next address, if it has one.
        let addresses = refused.get(endpoint);
        if (addresses === undefined) refused.set(endpoint, (addresses = new Set()));
        addresses.add(outcome.address);
        server++;
        continue;
      }
      if (outcome.kind === 'bad_request') {
        throw new HailstoneError('BAD_REPLY', `${endpoint.text} answered BAD_REQUEST: it does not speak this client's protocol version or limits`);
      }
      if (outcome.kind === 'unavailable') {
        this.counters.unavailable++;
        endpoint.notBefore = Date.now() + Math.max(1, outcome.retryAfterMs);
        last = `${endpoint.text} unavailable, retry after ${outcome.retryAfterMs} ms`;
        server++;
        continue;
      }
      lost++;
      this.counters.timeouts++;
      last = outcome.rejected ?? `no reply from ${endpoint.text} within ${this.timeoutMs} ms`;
      // A name may have moved to other addresses: resolve it again before the next request.
      if (isIP(endpoint.host) === 0) endpoint.addresses = undefined;
      server++;
      // Exponential backoff with full jitter, capped by the deadline.
      const backoff = Math.random() * Math.min(1000, 10 * 2 ** lost);
      await sleep(Math.min(backoff, Math.max(0, deadline - Date.now())));
    }
    return ids;
  }

  private givingUp(attempts: number, last: string, refused: Map<Endpoint, Set<string>>): HailstoneError {
    const hint = this.auth
      ? 'check that the servers run and share this key'
      : 'check that the servers run; a server that requires a key drops requests without one (pass --key-file / key)';
    const dead = refused.size === 0 ? '' : `; ${nothingListening([...refused.keys()])}`;
    return new HailstoneError('TIMEOUT', `no ids from ${this.endpoints.map((e) => e.text).join(', ')} after ${attempts} attempt(s) (last: ${last}${dead}); ${hint}`);
  }

  private unreachable(refused: Map<Endpoint, Set<string>>): HailstoneError {
    return new HailstoneError('UNREACHABLE', `${nothingListening([...refused.keys()])}: start the server, or check its address and port (--server / servers)`);
  }

  /** The endpoint's addresses, resolving its name when needed; an error says why it cannot. */
  private async addressesOf(endpoint: Endpoint): Promise<string[]> {
    if (endpoint.addresses !== undefined) return endpoint.addresses;
    let found: string[];
    try {
      found = await this.lookup(endpoint.host);
    } catch (error) {
      throw new Error(`cannot resolve ${endpoint.host}: ${(error as Error).message}`);
    }
    const valid = found.filter((a) => isIP(a) !== 0).map(plainAddress);
    if (valid.length === 0) throw new Error(`cannot resolve ${endpoint.host}: no addresses`);
    // IPv4 first: a server bound to 127.0.0.1 is not reached through ::1.
    endpoint.addresses = [...valid.filter((a) => isIP(a) === 4), ...valid.filter((a) => isIP(a) === 6)];
    return endpoint.addresses;
  }

  /** The socket connected to this server address, made on first use. */
  private peerFor(address: string, port: number): Peer {
    const key = peerKey(address, port);
    let peer = this.peers.get(key);
    if (peer === undefined) {
      const socket = createSocket(isIPv6(address) ? 'udp6' : 'udp4');
      socket.on('message', (msg, rinfo) => this.onReply(msg, rinfo.address, rinfo.port));
      socket.on('error', (error: NodeJS.ErrnoException) => {
        // ICMP port unreachable, reported to a connected socket: nothing listens there, so
        // no request to it will be answered. Other errors: those attempts time out and are retried.
        if (error.code === 'ECONNREFUSED') this.refuse(key, address);
      });
      socket.unref();
      const connected = new Promise<void>((resolve, reject) => socket.connect(port, address, (error?: Error) => (error ? reject(error) : resolve())));
      connected.catch(() => undefined); // seen by the request that waits on it, if one still does
      peer = { socket, connected };
      this.peers.set(key, peer);
    }
    return peer;
  }

  /** Every request outstanding to this peer ends now: nothing listens there. */
  private refuse(key: string, address: string): void {
    for (const [nonce, p] of this.pending) {
      if (p.peer !== key) continue;
      this.pending.delete(nonce);
      p.settle({ kind: 'refused', address });
    }
  }

  private async exchange(endpoint: Endpoint, count: number, timeoutMs: number): Promise<Outcome> {
    let address: string;
    try {
      const addresses = await this.addressesOf(endpoint);
      address = addresses[endpoint.nextAddress++ % addresses.length]!;
    } catch (error) {
      return { kind: 'timeout', rejected: (error as Error).message };
    }
    const tagged = this.auth !== undefined;
    const size = requestSize(count, tagged); // padded: the reply can be as large as the request
    const buf = Buffer.alloc(size);
    const nonce = randomFillSync(Buffer.allocUnsafe(8));
    const key = nonce.readBigUInt64BE(0);
    if (this.pending.has(key)) return { kind: 'timeout' }; // 2^-64: just try again
    const peer = this.peerFor(address, endpoint.port);
    try {
      // A socket closed while connecting never says so: close() ends the wait instead.
      await Promise.race([peer.connected, this.whenClosed]);
    } catch (error) {
      this.peers.delete(peerKey(address, endpoint.port));
      peer.socket.close();
      return { kind: 'timeout', rejected: `cannot send to ${hostPort(address, endpoint.port)}: ${(error as Error).message}` };
    }
    if (this.closed) return { kind: 'timeout' };
    writeRequestHeader(buf, count, nonce, Date.now(), tagged);
    if (tagged) this.auth!.sign(buf, size);
    this.counters.requests++;
    return new Promise<Outcome>((resolve) => {
      const pending: Pending = {
        endpoint,
        peer: peerKey(address, endpoint.port),
        count,
        settle: (outcome) => {
          clearTimeout(timer);
          resolve(outcome);
        },
      };
      const timer = setTimeout(() => {
        // Retire the nonce: a late reply to it is dropped, its ids never handed out.
        this.pending.delete(key);
        resolve(pending.rejected === undefined ? { kind: 'timeout' } : { kind: 'timeout', rejected: `replies from ${endpoint.text} were rejected: ${pending.rejected}` });
      }, timeoutMs);
      this.pending.set(key, pending);
      try {
        peer.socket.send(buf, (error) => {
          // An ICMP error already queued on the socket can surface here instead of as 'error' —
          // synchronously, on the next tick. Settled from setImmediate: a caller that retries
          // at once must still let timers and I/O run between attempts, never spin.
          if ((error as NodeJS.ErrnoException | null)?.code === 'ECONNREFUSED') setImmediate(() => this.refuse(pending.peer, address));
        });
      } catch {
        // The socket was closed meanwhile (the client, or the server left the fleet): this attempt times out.
      }
    });
  }

  private onReply(msg: Buffer, address: string, port: number): void {
    const header = parseReply(msg);
    const p = header === undefined || msg.length < 16 ? undefined : this.pending.get(msg.readBigUInt64BE(8));
    // Why a reply to a request still outstanding was dropped is kept, to say so if it times out.
    const reject = (why?: string) => {
      this.counters.rejectedReplies++;
      if (p !== undefined && why !== undefined) p.rejected = why;
    };
    if (header === undefined || p === undefined) return reject();
    const key = msg.readBigUInt64BE(8);
    const source = plainAddress(address);
    if (p.endpoint.port !== port || !(p.endpoint.addresses ?? []).includes(source)) return reject(`a reply came from ${hostPort(source, port)}, not from the server asked`);
    if (this.auth !== undefined && !header.tagged) return reject('they carry no tag: the server does not use a key, or not this protocol');
    if (this.auth !== undefined && !this.auth.verify(msg)) return reject('their tags do not verify: the server uses another key');
    if (this.auth === undefined && header.tagged) return reject('they are tagged: the server uses a key; pass it (--key-file / key)');
    if (header.status === STATUS_OK) {
      if (header.count < 1 || header.count > p.count) return reject(`a reply held ${header.count} ids for a request of ${p.count}`);
      const ids = this.plausibleIds(msg, header.count);
      if (ids === undefined) return reject('their ids are implausible (not increasing, mixed node ids, or timestamps far in the future): another layout, or a clock far ahead');
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
    const origin = hostPort(plainAddress(address), port);
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
      if (timestampOf(l, Number(id >> shift)) > latest) return undefined;
      ids[i] = id;
    }
    return ids;
  }
}

export type { NodeIdConflict } from './conflicts.js';

export function createClient(options: ClientOptions): Client {
  return new IdClient(options);
}
