// A node in fleet mode: it reserves through the node's one reservation in etcd under the claim
// (node-reservation.ts) and, with a state dir, in a state file too, as a floor etcd restored
// from an old backup cannot go below.

import { CombinedStore } from '../node/combined-store.js';
import type { HailstoneNode } from '../node/node.js';
import { fileStoreOf } from '../node/open.js';
import { type NodeOptions, type NodeRules, checkNodeRules } from '../node/options.js';
import { startNode } from '../node/startup.js';
import type { ReservationStore } from '../node/store.js';
import type { NodeLogger } from '../logger.js';
import { type ClaimRef, WHOLE_NODE, etcdStoreTraits } from './etcd-store.js';
import { reservationKey } from './etcd.js';
import { LinkedStore, type ReservationLink } from './node-reservation.js';
import { mutated } from './mutations.js';

export interface FleetNodeContext {
  cluster: string;
  options: Partial<NodeOptions>;
  logger: NodeLogger;
  /** The node's one reservation under the claim (node-reservation.ts): in process, or through the primary. */
  link: ReservationLink;
}

/** Opens a node over etcd under a claim (and over its state dir too, when one is given). */
export async function openFleetNode(context: FleetNodeContext, claim: ClaimRef): Promise<HailstoneNode> {
  const { cluster, options, logger, link } = context;
  const nodeOptions: NodeRules = { ...options, nodeId: claim.nodeId, logger };
  const rules = checkNodeRules(nodeOptions);
  // Every stripe reserves through the node's one key: etcd load grows with nodes, not workers.
  let store: ReservationStore = new LinkedStore(link, etcdStoreTraits(reservationKey(cluster, claim.nodeId, WHOLE_NODE)));
  let stateFile: string | undefined;
  const { stateDir } = options;
  if (typeof stateDir === 'string' && stateDir !== '') {
    const file = fileStoreOf({ ...options, nodeId: claim.nodeId, stateDir }, rules);
    stateFile = file.stateFile;
    store = new CombinedStore(store, file);
  }
  if (mutated('resume-below-floor')) store = resumingBelowFloor(store, rules.maxLeadMs);
  return startNode(store, nodeOptions, rules, stateFile);
}

/** The 'resume-below-floor' mutation: the stored floor read a lead too low, as a node that forgot its last reservation would. */
function resumingBelowFloor(store: ReservationStore, leadMs: number): ReservationStore {
  return Object.assign(Object.create(store) as ReservationStore, {
    open: async () => {
      const stored = await store.open();
      return stored.floor === undefined ? stored : { ...stored, floor: stored.floor - leadMs };
    },
  });
}
