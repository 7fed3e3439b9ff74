// Fleet mode as the server sees it: a node source whose node id is claimed in etcd. The
// member is made when the server starts it — after the socket is bound, so a taken port
// fails before etcd is asked — and hands the server each node it opens after a re-claim.

import type { HailstoneError } from '../errors.js';
import type { HailstoneNode } from '../node/node.js';
import type { NodeOptions } from '../node/options.js';
import type { FleetStats, NodeSource, NodeSourceHooks } from '../node/source.js';
import { FleetMember, type FleetOptions } from './member.js';

/** Retry-after while a fenced server claims a node id again (its old node is closed meanwhile). */
const RECLAIM_RETRY_MS = 500;

export type FleetSourceOptions = FleetOptions & Partial<NodeOptions>;

export class FleetNodeSource implements NodeSource {
  readonly closedRetryMs = RECLAIM_RETRY_MS;
  failed: Promise<HailstoneError> = new Promise(() => undefined);
  /** The membership, once started (the CLI's workers adopt their primary's new claims through it). */
  member: FleetMember | undefined;

  constructor(private readonly options: FleetSourceOptions) {}

  /** The node id given, if one was (a free claim's is known only once claimed). */
  get nodeId(): number | undefined {
    return this.options.nodeId;
  }

  async start(hooks: NodeSourceHooks): Promise<HailstoneNode> {
    const member = new FleetMember(
      { ...this.options, logger: hooks.logger, onStartupWait: (wait) => hooks.onStartupWait(wait) },
      { logger: hooks.logger, udp: () => hooks.address(), onNode: (node) => hooks.onNode(node) },
    );
    this.member = member;
    this.failed = member.gaveUp;
    const node = await member.start();
    if (node === undefined) throw new Error('a fleet server opens a node');
    return node;
  }

  fleetStats(): FleetStats | undefined {
    return this.member?.stats();
  }

  async close(): Promise<void> {
    await this.member?.close();
  }
}
