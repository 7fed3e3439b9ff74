// Where a server's node comes from. The server answers from whatever node its source hands
// it and knows nothing else of how that node was opened: in local mode the source opens one
// node from a node id and a state directory; in fleet mode (src/fleet/) it claims a node id
// in etcd, and after a fence closes that node and hands over the next one.

import type { HailstoneError } from '../errors.js';
import type { LatencyHistogram } from '../latency.js';
import type { NodeLogger } from '../logger.js';
import type { HailstoneNode } from './node.js';
import { openNode } from './open.js';
import type { NodeOptions, StartupWait } from './options.js';

/** What the server tells a source while it starts it. */
export interface NodeSourceHooks {
  logger: NodeLogger;
  /** The server's bound address, "host:port" (fleet mode writes it into the claim). */
  address(): string;
  /** The first node's startup must wait this long before its first id (see NodeOptions). */
  onStartupWait(wait: StartupWait): void;
  /** A later node replaces the one served so far (fleet mode, after a re-claim). */
  onNode(node: HailstoneNode): void;
}

export interface NodeSource {
  /** The node id it will open, where that is known before it opens (for the port's guard). */
  readonly nodeId: number | undefined;
  /**
   * Retry-after for a refusal the node names no time for (it is closed): in fleet mode a new
   * node follows within moments; in local mode only a restart cures it.
   */
  readonly closedRetryMs: number;
  /** Opens the first node; the server answers UNAVAILABLE until it resolves. */
  start(hooks: NodeSourceHooks): Promise<HailstoneNode>;
  /** Settles only if the source can no longer hand out a node and will not try again. */
  readonly failed: Promise<HailstoneError>;
  /** Fleet mode's claim, fencing and etcd figures; undefined in local mode. */
  fleetStats(): FleetStats | undefined;
  /** Closes the node (if the source opened it) and whatever keeps it owned. */
  close(): Promise<void>;
}

/**
 * A fleet member's figures, for /metrics and /healthz. Declared here, beside the source
 * that reports them, so that the server and its metrics can show them without loading
 * fleet mode.
 */
export interface FleetStats {
  cluster: string;
  /** The node id held now (undefined while claiming). */
  nodeId: number | undefined;
  instance: string;
  claims: number;
  fences: number;
  /** Lease keepalives confirmed and failed, over every claim. */
  renewals: number;
  renewalFailures: number;
  /** ms since the current claim's last confirmed keepalive was sent. */
  sinceKeepaliveMs: number | undefined;
  leaseTtlS: number;
  claiming: boolean;
  /**
   * Why etcd keeps this server from issuing now, for /healthz: the claim was lost (fenced),
   * etcd is unreachable, a claim failed. Undefined while it holds a claim.
   */
  problem: string | undefined;
  etcdLatency: ReturnType<LatencyHistogram['snapshot']>;
  /**
   * Each etcd endpoint ("host:port"): true while it answers, false while requests pass it
   * over after it failed or stalled (it is probed again after 250 ms, doubling to 2 s).
   */
  endpoints: Record<string, boolean>;
}

/** Retry-after when a local node is closed: waiting alone will not cure it. */
const LOCAL_CLOSED_RETRY_MS = 60_000;
const never = new Promise<HailstoneError>(() => undefined);

/** Local mode: opens the node from its node id and state directory, and closes it. */
export function localNodeSource(options: NodeOptions): NodeSource {
  let node: Promise<HailstoneNode> | undefined;
  return {
    nodeId: options.nodeId,
    closedRetryMs: LOCAL_CLOSED_RETRY_MS,
    failed: never,
    start(hooks) {
      node = openNode({
        ...options,
        logger: hooks.logger,
        onStartupWait: (wait) => hooks.onStartupWait(wait),
      });
      return node;
    },
    fleetStats: () => undefined,
    async close() {
      // A node that failed to open has nothing to close.
      const opened = await node?.catch(() => undefined);
      await opened?.close();
    },
  };
}

/** A node the caller opened (openNode): served as it is, and left open. */
export function givenNodeSource(node: HailstoneNode): NodeSource {
  return {
    nodeId: undefined,
    closedRetryMs: LOCAL_CLOSED_RETRY_MS,
    failed: never,
    start: async () => node,
    fleetStats: () => undefined,
    close: async () => undefined,
  };
}
