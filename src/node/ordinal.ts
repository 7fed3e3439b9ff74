// A node id from the host name's ordinal, as a Kubernetes StatefulSet names its pods
// (hailstone-0, hailstone-1, …): each pod's name is unique and stable across restarts, so
// its trailing number is a node id no other live pod has — within one StatefulSet.

import { hostname } from 'node:os';
import { InvalidArgumentError, describe } from '../errors.js';

/**
 * The node id in the trailing "-N" of `name` (default: HAILSTONE_HOSTNAME, else the host
 * name). Throws when the name has no ordinal or N is past `maxNodeId`.
 */
export function nodeIdFromOrdinal(maxNodeId: number, name: string = process.env.HAILSTONE_HOSTNAME || hostname()): number {
  const m = /-(\d+)$/.exec(name);
  if (m === null) {
    throw new InvalidArgumentError('nodeId', `ordinal: the host name ${describe(name)} does not end in -N (a StatefulSet's pods are named NAME-0, NAME-1, …): give the node id as a number`);
  }
  const n = Number(m[1]);
  if (!Number.isSafeInteger(n) || n > maxNodeId) {
    throw new InvalidArgumentError('nodeId', `ordinal: the host name ${describe(name)} ends in ${m[1]}, past the largest node id ${maxNodeId}: run at most ${maxNodeId + 1} replicas`);
  }
  return n;
}
