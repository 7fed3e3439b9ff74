// What fleet mode takes: etcd, the cluster, the claim's waits and lease, the address to
// advertise — and, for a worker of --workers N, the claim its primary holds.

import type { Coordinator } from './coordinator.js';
import type { EtcdOptions } from './etcd.js';
import type { FleetRuntime } from './runtime.js';
import type { ClaimRef } from './etcd-store.js';
import type { ReservationLink } from './node-reservation.js';

export interface FleetOptions {
  etcd: EtcdOptions;
  /**
   * Run under a claim another process holds (a worker of --workers N: the primary claims,
   * keeps the lease alive and re-claims; its workers write their stripes under that claim).
   */
  fleetClaim?: ClaimRef;
  /**
   * With fleetClaim: the node's one reservation under that claim, kept by the claim's holder
   * (a worker reaches its primary's over IPC). Absent: this process keeps it.
   */
  reservationLink?: (claim: ClaimRef) => ReservationLink;
  /** Default "default". Node ids are unique within a cluster. */
  cluster?: string;
  /** With a nodeId: how long to wait for its holder to go away before NODE_ID_TAKEN. Default the lease TTL plus 1 s. */
  claimWaitMs?: number;
  /** Lease TTL in seconds: how long after a holder dies its node id can move. Default 10. */
  leaseTtlS?: number;
  /** At startup, how long to wait for etcd before COORDINATOR_UNAVAILABLE. Default 30 s. */
  coordinatorWaitMs?: number;
  /**
   * The UDP address written into the claim, where clients that find servers in etcd send:
   * "host:port", or "host" (with the bound port). Default the bound address — which names no
   * machine when the server binds every interface (0.0.0.0, ::), or is behind NAT.
   */
  advertise?: string;
}

/**
 * What a member runs on, besides its options: the coordinator and the runtime. A server
 * takes the defaults (etcd at `etcd`, the system's clocks); the fleet simulator passes its
 * in-memory etcd and virtual time. Not part of the public options.
 */
export interface FleetEdges {
  /** Connects to the coordinator. Default: etcd at `etcd` (etcd-adapter.ts). */
  coordinator?: () => Coordinator;
  /** The clocks, timers and chance fleet mode runs on. Default the system's. */
  runtime?: FleetRuntime;
}
