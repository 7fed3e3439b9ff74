// What a fleet looks like in etcd, read at one revision: who holds each node id (the claim
// key's JSON), how long each holder's lease has left, each stripe's reservation R and how
// far it runs ahead of now — and reservations whose node id no live instance claims (a
// dead holder's, kept so the next holder starts above them), and how many ids are free.

import type { Coordinator } from './coordinator.js';
import { DEFAULT_LAYOUT } from '../layout.js';
import { type ClaimInfo, claimsPrefix, clusterRoot, parseReservation, reservationsRoot } from './etcd.js';
import { holderOf } from './holder.js';

/** One worker stripe's durable reservation. */
export interface StripeStatus {
  /** "i-count": worker stripe i of count. */
  stripe: string;
  /** R, ms since the Unix epoch (undefined: the key holds no R this version can read). */
  reservation: number | undefined;
  /** R minus now, ms (negative: R is behind the clock, as a dead holder's soon is). */
  aheadMs: number | undefined;
}

export interface ClaimedNodeStatus {
  nodeId: number;
  /** What the claim key says of its holder (undefined fields: the key held something else). */
  holder: Partial<ClaimInfo>;
  /** Seconds left on the holder's lease, as etcd says (undefined: the lease could not be read). */
  leaseLeftS: number | undefined;
  leaseTtlS: number | undefined;
  stripes: StripeStatus[];
}

export interface UnclaimedNodeStatus {
  nodeId: number;
  stripes: StripeStatus[];
}

export interface FleetStatus {
  cluster: string;
  /** The etcd revision everything was read at. */
  revision: string;
  /** ms since the Unix epoch, on this machine's clock, when it was read. */
  readAt: number;
  nodes: ClaimedNodeStatus[];
  /** Node ids with reservations and no live claim. */
  unclaimed: UnclaimedNodeStatus[];
  /** Node ids no live instance holds (of 0 … maxNodeId). */
  freeIds: number;
}

/** Reads the cluster's keys (one request) and each holder's lease. */
export async function readFleetStatus(coordinator: Coordinator, cluster: string, options: { maxNodeId?: number; now: () => number }): Promise<FleetStatus> {
  const { now } = options;
  const maxNodeId = options.maxNodeId ?? DEFAULT_LAYOUT.maxNodeId;
  const result = await coordinator.range(clusterRoot(cluster));
  const readAt = now();
  const claims = new Map<number, { holder: Partial<ClaimInfo>; lease: string }>();
  const stripes = new Map<number, StripeStatus[]>();
  for (const kv of result.kvs) {
    const key = kv.key;
    if (key.startsWith(claimsPrefix(cluster))) {
      const nodeId = nodeIdOf(key.slice(claimsPrefix(cluster).length));
      if (nodeId !== undefined) claims.set(nodeId, { holder: holderOf(kv.value) ?? {}, lease: kv.lease });
    } else if (key.startsWith(reservationsRoot(cluster))) {
      const [id, stripe] = key.slice(reservationsRoot(cluster).length).split('/');
      const nodeId = nodeIdOf(id ?? '');
      if (nodeId === undefined || stripe === undefined) continue;
      const reservation = parseReservation(kv.value);
      const list = stripes.get(nodeId) ?? [];
      list.push({ stripe, reservation, aheadMs: reservation === undefined ? undefined : reservation - readAt });
      stripes.set(nodeId, list);
    }
  }
  const byStripe = (a: StripeStatus, b: StripeStatus) => a.stripe.localeCompare(b.stripe, 'en', { numeric: true });
  const nodes = await Promise.all(
    [...claims].map(async ([nodeId, { holder, lease }]): Promise<ClaimedNodeStatus> => {
      const ttl = await leaseTtl(coordinator, lease);
      return { nodeId, holder, ...ttl, stripes: (stripes.get(nodeId) ?? []).sort(byStripe) };
    }),
  );
  nodes.sort((a, b) => a.nodeId - b.nodeId);
  const unclaimed = [...stripes]
    .filter(([nodeId]) => !claims.has(nodeId))
    .map(([nodeId, list]) => ({ nodeId, stripes: list.sort(byStripe) }))
    .sort((a, b) => a.nodeId - b.nodeId);
  const held = [...claims.keys()].filter((id) => id <= maxNodeId).length;
  return { cluster, revision: result.revision, readAt, nodes, unclaimed, freeIds: maxNodeId + 1 - held };
}

function nodeIdOf(text: string): number | undefined {
  return /^\d{1,5}$/.test(text) ? Number(text) : undefined;
}

/** The lease's time left; undefined when it is gone or cannot be read (a holder's lease is not ours to fail on). */
async function leaseTtl(coordinator: Coordinator, lease: string): Promise<{ leaseLeftS: number | undefined; leaseTtlS: number | undefined }> {
  if (lease === '0') return { leaseLeftS: undefined, leaseTtlS: undefined };
  try {
    const ttl = await coordinator.leaseTimeToLive(lease);
    return { leaseLeftS: ttl?.leftS, leaseTtlS: ttl?.grantedS };
  } catch {
    return { leaseLeftS: undefined, leaseTtlS: undefined };
  }
}
