// The node a serving process answers from — while it starts and once it serves — shared by
// its front ends: the UDP server and the HTTP one each read it here, so both answer from one
// node (never a second node id) and refuse alike, with the same retry-after. Either front
// end may run without the other (`hailstone serve --no-udp`).

import type { HailstoneError } from '../errors.js';
import type { NodeLogger } from '../logger.js';
import type { HailstoneNode } from '../node/node.js';
import type { StartupWait } from '../node/options.js';
import type { FleetStats, NodeSource } from '../node/source.js';
import type { ServingNode } from './api.js';

/** Retry-after while the node is opening and has not said how long it will wait. */
export const STARTING_RETRY_MS = 100;

export interface LiveNodeHooks {
  logger: NodeLogger;
  /** The UDP address the node is served on ("host:port"), for a fleet claim; "" when no UDP is served. */
  address(): string;
  /** Told when the first node's startup must wait before its first id. */
  onStartupWait?(wait: StartupWait): void;
}

export class LiveNode implements ServingNode {
  private current: HailstoneNode | undefined;
  /** Until the node is open: when its startup wait ends (wall clock), if it said. */
  private startingUntil: number | undefined;
  private starting: Promise<HailstoneNode> | undefined;
  private closing: Promise<void> | undefined;

  /** `source` is closed with this node. */
  constructor(private readonly source: NodeSource) {}

  /** The node answering now; undefined while it starts. */
  node(): HailstoneNode | undefined {
    return this.current;
  }

  /** Whether it is known yet when ids will be served (the node serves, or its startup wait is known). */
  planned(): boolean {
    return this.current !== undefined || this.startingUntil !== undefined;
  }

  /** The retry-after a refusal is answered with: while starting (no status), or after tryFill's negative `status`. */
  retryAfterMs(status?: number): number {
    const node = this.current;
    if (node === undefined || status === undefined) {
      return this.startingUntil === undefined ? STARTING_RETRY_MS : Math.max(STARTING_RETRY_MS, this.startingUntil - Date.now());
    }
    return node.retryAfterMs(status) ?? this.source.closedRetryMs;
  }

  /** The node id, where it is known before the node opens (for a port's guard). */
  get nodeId(): number | undefined {
    return this.source.nodeId;
  }

  /** Settles only if the source can no longer hand out a node and will not try again. */
  get failed(): Promise<HailstoneError> {
    return this.source.failed;
  }

  fleetStats(): FleetStats | undefined {
    return this.source.fleetStats();
  }

  /** Opens the node (once; later calls get the same promise); resolves once ids are served. */
  start(hooks: LiveNodeHooks): Promise<HailstoneNode> {
    this.starting ??= this.source
      .start({
        logger: hooks.logger,
        address: () => hooks.address(),
        onStartupWait: (wait) => {
          this.startingUntil = wait.untilMs;
          hooks.onStartupWait?.(wait);
        },
        // A later node (fleet mode, after a re-claim) replaces the one served so far.
        onNode: (next) => {
          this.current = next;
        },
      })
      .then((node) => (this.current = node));
    return this.starting;
  }

  /** Closes the node and whatever keeps it owned (once). */
  close(): Promise<void> {
    this.closing ??= this.source.close();
    return this.closing;
  }
}
