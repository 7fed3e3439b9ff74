// The client's public shape: what it takes, what it does, what it counts.

import type { Layout } from '../layout.js';
import type { NodeIdConflict } from './conflicts.js';
import type { DiscoverServers } from './discovery.js';
import type { PoolOptions, PoolStats } from './pool.js';

/** What the UDP client takes; `ClientOptions` (src/create-client.ts) adds fleet discovery over etcd. */
export interface ClientCoreOptions {
  /** "host:port" (or "[v6]:port"); requests fail over across them in order. Optional with a discovery. */
  servers?: string[];
  /** Finds the servers (and follows them) instead of, or besides, `servers`: fleet mode's reads etcd. */
  discover?: DiscoverServers;
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
   * nextId() calls made together share one request: those made in the same tick (0, the
   * default), or within this many ms, are served by one nextIds(k), their ids handed out in
   * call order. Nothing is fetched that no caller asked for. `false`: one request per call.
   */
  coalesceMs?: number | false;
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
  /** One id: from the pool when there is one, else a round trip shared with the calls made with it. */
  nextId(): Promise<bigint>;
  /** With a pool: an id at once, or undefined when the pool is empty (a refill is then under way). */
  takeId(): bigint | undefined;
  nextIds(count: number): Promise<bigint[]>;
  stats(): ClientStats;
  close(): Promise<void>;
}
