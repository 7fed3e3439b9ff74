// The server's public shape: what it takes, what it is, what it counts; and the ServingNode
// another front end (HTTP) answers from.

import type { HailstoneError } from '../errors.js';
import type { NodeLogger } from '../logger.js';
import type { HailstoneNode } from '../node/node.js';
import type { StartupWait } from '../node/options.js';
import type { FleetStats } from '../node/source.js';
import type { DropReason } from '../protocol/wire.js';
import type { RateLimitOptions } from './rate-limit.js';
import type { TransportChoice } from './select-transport.js';
import type { Transport, TransportName, TransportStats } from './transport.js';

/** What every server takes, whichever node it answers from. */
export interface ServeCommonOptions {
  logger?: NodeLogger;
  /** Told when the node's startup must wait before the first id (see NodeOptions). */
  onStartupWait?: (wait: StartupWait) => void;
  /** Default 127.0.0.1: never all interfaces unless asked. */
  host?: string;
  /** Default 7077; 0 picks a free port. */
  port?: number;
  /** Shared key: requests must carry a valid tag, replies are tagged. */
  key?: Uint8Array;
  /**
   * Several shared keys, for rotation: a request signed with any of them is accepted and
   * answered with a reply signed by the same key. Combined with `key` if both are given.
   */
  keys?: Uint8Array[];
  /** Per-source token bucket. Default: off. */
  rateLimit?: RateLimitOptions;
  /** Source networks allowed to ask, as CIDRs ("10.0.0.0/8", "::1/128"). Default: everyone. */
  allow?: string[];
  /** With a key: how far a request's client time may be from the server's clock. Default 30 s. */
  replayWindowMs?: number;
  /**
   * 'auto' (default): the batched native transport where its addon loads, else dgram.
   * 'native' or 'dgram' insist; or pass a Transport.
   */
  transport?: TransportChoice | Transport;
  /**
   * Native transport only: let several processes bind this port (worker mode). The caller
   * then holds the port's guard for all of them (see `reservePortForWorkers`); otherwise
   * the server holds it, so no second server can join its port.
   */
  reusePort?: boolean;
  /**
   * Called once the socket is bound — before the node has opened, so a taken port fails at
   * once. Until the node is open, every valid request is answered UNAVAILABLE with how long
   * the node's startup will still wait, and `server.node` throws; `stats()` works.
   */
  onListening?: (server: Server) => void;
}

export interface ServerStats {
  datagrams: number;
  requests: number;
  idsServed: number;
  /** `unavailableStarting`: of `unavailable`, those answered while the node was still opening (or claiming). */
  replies: { ok: number; unavailable: number; unavailableStarting: number; badRequest: number };
  dropped: Record<DropReason, number>;
  transport: { name: TransportName } & TransportStats;
}

export interface Server {
  /** The bound address (port 0 resolved to the port the system picked). */
  readonly address: { host: string; port: number };
  readonly node: HailstoneNode;
  stats(): ServerStats;
  /** Fleet mode: the claim, fencing and etcd figures; undefined in local mode. */
  fleetStats(): FleetStats | undefined;
  /**
   * Settles only if the server can no longer serve and will not recover by itself — in fleet
   * mode, a node id given with `nodeId` taken by another instance while this one was fenced.
   * The server keeps answering UNAVAILABLE until closed; a program should close it and exit.
   */
  readonly failed: Promise<HailstoneError>;
  /** Stops receiving, then closes the node (releasing its lock) if the server opened it. */
  close(): Promise<void>;
}

/**
 * What another front end (ids over HTTP) answers from: this server's own node — never a
 * second node id — and the retry-after UDP would send, so both protocols refuse alike.
 */
export interface ServingNode {
  /** The node ids are issued from; undefined while the server starts (or was not made by serve()). */
  node(): HailstoneNode | undefined;
  /** How long to wait: while starting (no status), or after tryFill returned the negative `status`. */
  retryAfterMs(status?: number): number;
  /**
   * While starting: whether the server knows yet when its node will serve (its startup wait
   * is known, or it serves). Until it does, a request waits a moment for it, so the first
   * STARTING answer carries the real wait, not a guess. Absent: always known.
   */
  planned?(): boolean;
}
