// serve(): the id server with the node source its options ask for — a node id and a state
// directory (local mode), etcd (fleet mode), or a node the caller opened. The server itself
// (src/server/) answers from any source and knows nothing of fleet mode.

import type { FleetOptions } from './fleet/member.js';
import type { HailstoneNode } from './node/node.js';
import type { NodeOptions } from './node/options.js';
import { type NodeSource, givenNodeSource, localNodeSource } from './node/source.js';
import { type ServeCommonOptions, type Server, startServer } from './server/server.js';

/** Local mode: the server opens the node from nodeId and stateDir, and closes it with itself. */
export interface LocalServeOptions extends ServeCommonOptions, NodeOptions {
  node?: undefined;
  etcd?: undefined;
}

/**
 * Fleet mode: the node id is claimed in etcd (nodeId optional: the lowest free one),
 * reservations are kept there, and stateDir is optional (an extra floor).
 */
export interface FleetServeOptions extends ServeCommonOptions, Partial<NodeOptions>, FleetOptions {
  node?: undefined;
}

/** A node opened by the caller (openNode): the server answers from it and leaves it open. */
export interface NodeServeOptions extends ServeCommonOptions {
  node: HailstoneNode;
  etcd?: undefined;
}

/** One of three shapes: a node id and state dir (local), etcd (fleet), or an open node. */
export type ServeOptions = LocalServeOptions | FleetServeOptions | NodeServeOptions;

/** The node source the options describe. Fleet mode (etcd, gRPC) is loaded only when asked for. */
export async function nodeSourceFor(options: ServeOptions): Promise<NodeSource> {
  if (options.node !== undefined) return givenNodeSource(options.node);
  if (options.etcd !== undefined) {
    const { FleetNodeSource } = await import('./fleet/source.js');
    return new FleetNodeSource(options);
  }
  return localNodeSource(options);
}

/**
 * Starts an id server: binds the socket first (a taken port fails at once), then opens
 * the node — answering UNAVAILABLE while it opens — and resolves once ids are served.
 */
export async function serve(options: ServeOptions): Promise<Server> {
  return startServer(options, await nodeSourceFor(options));
}
