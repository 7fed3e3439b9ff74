// Requests and their replies over UDP: one connected socket per server address (Linux
// reports an ICMP port unreachable only to a connected socket), a fresh random nonce per
// request, and a reply accepted only from the address asked, for a nonce still outstanding,
// with a valid tag when there is a key, and with plausible ids — then the nonce is retired,
// so a duplicated or late reply is never used twice.

import { randomFillSync } from 'node:crypto';
import { type Socket, createSocket } from 'node:dgram';
import { isIPv6 } from 'node:net';
import { hostPort } from '../address.js';
import { type Layout, timestampOf } from '../layout.js';
import type { Authenticator } from '../protocol/auth.js';
import { HEADER_SIZE, STATUS_BAD_REQUEST, STATUS_OK, parseReply, requestSize, writeRequestHeader } from '../protocol/wire.js';
import { type Endpoint, plainAddress } from './endpoint.js';

export type Outcome =
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
  /** True once it has: later requests send at once, without waiting on the promise. */
  ready: boolean;
}

/**
 * Random bytes for nonces, drawn from the CSPRNG 4 KiB at a time: one call into it per 512
 * requests instead of one per request. A nonce only has to be unguessable to someone who
 * cannot read this process's memory, as before.
 */
class NonceSource {
  private readonly pool = Buffer.alloc(4096);
  private offset = this.pool.length;

  /** The next 8 random bytes, copied out (the pool is refilled under earlier views). */
  next(): Buffer {
    if (this.offset === this.pool.length) {
      randomFillSync(this.pool);
      this.offset = 0;
    }
    const nonce = Buffer.allocUnsafe(8);
    this.pool.copy(nonce, 0, this.offset, this.offset + 8);
    this.offset += 8;
    return nonce;
  }
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

export function peerKey(address: string, port: number): string {
  return `${address} ${port}`;
}

export class Exchanges {
  /** Requests sent, and datagrams dropped: unknown nonce, wrong sender, bad tag, malformed or implausible. */
  requests = 0;
  rejectedReplies = 0;
  private readonly peers = new Map<string, Peer>();
  private readonly pending = new Map<bigint, Pending>();
  private readonly nonces = new NonceSource();
  private closed = false;
  /** Resolves when close() is called: a request waiting for its socket to connect stops waiting. */
  private readonly whenClosed: Promise<void>;
  private markClosed: () => void = () => undefined;

  constructor(
    private readonly options: {
      auth: Authenticator | undefined;
      layout: Layout;
      /** How far past this client's clock an id's timestamp may be. */
      maxFutureMs: number;
      /** Told of the ids of each accepted reply and where they came from ("host:port"). */
      onIds: (origin: string, ids: bigint[]) => void;
    },
  ) {
    this.whenClosed = new Promise((resolve) => {
      this.markClosed = resolve;
    });
  }

  /** Closes the sockets of peers no listed server resolves to, once nothing waits on them. */
  prune(listed: Set<string>): void {
    const waiting = new Set([...this.pending.values()].map((p) => p.peer));
    for (const [key, peer] of this.peers) {
      if (listed.has(key) || waiting.has(key)) continue;
      this.peers.delete(key);
      peer.socket.close();
    }
  }

  /** Every outstanding request times out now, and every socket closes. */
  async close(): Promise<void> {
    this.closed = true;
    this.markClosed();
    for (const p of this.pending.values()) p.settle({ kind: 'timeout' });
    this.pending.clear();
    await Promise.all([...this.peers.values()].map((p) => new Promise<void>((resolve) => p.socket.close(() => resolve()))));
    this.peers.clear();
  }

  /** One request for `count` ids to one address of `endpoint`: its reply, or why there is none. */
  async send(endpoint: Endpoint, address: string, count: number, timeoutMs: number): Promise<Outcome> {
    const auth = this.options.auth;
    const tagged = auth !== undefined;
    const size = requestSize(count, tagged); // padded: the reply can be as large as the request
    const buf = Buffer.alloc(size);
    const nonce = this.nonces.next();
    const key = nonce.readBigUInt64BE(0);
    if (this.pending.has(key)) return { kind: 'timeout' }; // 2^-64: just try again
    const peer = this.peerFor(address, endpoint.port);
    if (!peer.ready) {
      try {
        // A socket closed while connecting never says so: close() ends the wait instead.
        await Promise.race([peer.connected, this.whenClosed]);
      } catch (error) {
        this.peers.delete(peerKey(address, endpoint.port));
        peer.socket.close();
        return { kind: 'timeout', rejected: `cannot send to ${hostPort(address, endpoint.port)}: ${(error as Error).message}` };
      }
    }
    if (this.closed) return { kind: 'timeout' };
    writeRequestHeader(buf, count, nonce, Date.now(), tagged);
    if (auth !== undefined) auth.sign(buf, size);
    this.requests++;
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
      const made: Peer = { socket, connected, ready: false };
      connected.then(() => (made.ready = true), () => undefined);
      peer = made;
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

  private onReply(msg: Buffer, address: string, port: number): void {
    const header = parseReply(msg);
    const p = header === undefined || msg.length < 16 ? undefined : this.pending.get(msg.readBigUInt64BE(8));
    // Why a reply to a request still outstanding was dropped is kept, to say so if it times out.
    const reject = (why?: string) => {
      this.rejectedReplies++;
      if (p !== undefined && why !== undefined) p.rejected = why;
    };
    if (header === undefined || p === undefined) return reject();
    const key = msg.readBigUInt64BE(8);
    const source = plainAddress(address);
    if (p.endpoint.port !== port || !(p.endpoint.addresses ?? []).includes(source)) return reject(`a reply came from ${hostPort(source, port)}, not from the server asked`);
    if (this.options.auth !== undefined && !header.tagged) return reject('they carry no tag: the server does not use a key, or not this protocol');
    if (this.options.auth !== undefined && !this.options.auth.verify(msg)) return reject('their tags do not verify: the server uses another key');
    if (this.options.auth === undefined && header.tagged) return reject('they are tagged: the server uses a key; pass it (--key-file / key)');
    if (header.status === STATUS_OK) {
      if (header.count < 1 || header.count > p.count) return reject(`a reply held ${header.count} ids for a request of ${p.count}`);
      const ids = plausibleIds(this.options.layout, msg, header.count, Date.now() + this.options.maxFutureMs);
      if (ids === undefined) return reject('their ids are implausible (not increasing, mixed node ids, or timestamps far in the future): another layout, or a clock far ahead');
      this.pending.delete(key);
      this.options.onIds(hostPort(source, port), ids);
      return p.settle({ kind: 'ok', ids });
    }
    this.pending.delete(key);
    p.settle(header.status === STATUS_BAD_REQUEST ? { kind: 'bad_request' } : { kind: 'unavailable', retryAfterMs: header.retryAfterMs });
  }
}

/** The reply's ids, or undefined when they cannot be genuine: not increasing, mixed nodes, absurd times. */
export function plausibleIds(l: Layout, msg: Buffer, count: number, latest: number): bigint[] | undefined {
  const shift = BigInt(l.nodeBits + l.sequenceBits);
  const nodeMask = (1n << BigInt(l.nodeBits)) - 1n;
  const limit = 1n << BigInt(l.timeBits + l.nodeBits + l.sequenceBits);
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
