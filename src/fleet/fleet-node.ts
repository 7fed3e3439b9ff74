// A node in fleet mode: its reservations kept in etcd under the claim (and, with a state
// dir, in a state file too, as a floor etcd restored from an old backup cannot go below).

import type { Etcd3 } from 'etcd3';
import { CombinedStore } from '../node/combined-store.js';
import type { HailstoneNode } from '../node/node.js';
import { fileStoreOf } from '../node/open.js';
import { type NodeOptions, type NodeRules, checkNodeRules } from '../node/options.js';
import { startNode } from '../node/startup.js';
import type { ReservationStore } from '../node/store.js';
import type { NodeLogger } from '../logger.js';
import { type ClaimRef, EtcdStore } from './etcd-store.js';

export interface FleetNodeContext {
  etcd: Etcd3;
  cluster: string;
  options: Partial<NodeOptions>;
  logger: NodeLogger;
  /** Observes every etcd request's duration, seconds. */
  observe: (seconds: number) => void;
  /** Why etcd refuses this server (TLS, password, permission), if it does. */
  refusal: (error: unknown) => string | undefined;
}

/** Opens a node over etcd under a claim (and over its state dir too, when one is given). */
export async function openFleetNode(context: FleetNodeContext, claim: ClaimRef): Promise<HailstoneNode> {
  const { etcd, cluster, options, logger, observe, refusal } = context;
  const nodeOptions: NodeRules = { ...options, nodeId: claim.nodeId, logger };
  const rules = checkNodeRules(nodeOptions);
  let store: ReservationStore = new EtcdStore({ etcd, cluster, claim, worker: rules.worker, observe, refusal });
  let stateFile: string | undefined;
  const { stateDir } = options;
  if (typeof stateDir === 'string' && stateDir !== '') {
    const file = fileStoreOf({ ...options, nodeId: claim.nodeId, stateDir }, rules);
    stateFile = file.stateFile;
    store = new CombinedStore(store, file);
  }
  return startNode(store, nodeOptions, rules, stateFile);
}
