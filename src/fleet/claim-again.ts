// Which failures of claiming a node id (or of opening its node) a new claim can cure, so a
// member tries again rather than stop: etcd unreachable for a moment, a claim lost on the way,
// a lease that expired while the claim was being made.

import { HailstoneError } from '../errors.js';
import { OwnershipLostError } from '../node/store.js';
import { etcdUnreachable, leaseGone } from './etcd.js';
import { LeaseGoneError } from './lease-session.js';

export function claimAgainCures(error: unknown): boolean {
  if (error instanceof OwnershipLostError) return true;
  if (error instanceof HailstoneError) return error.code === 'OWNERSHIP_LOST' || error.code === 'COORDINATOR_UNAVAILABLE';
  return etcdUnreachable(error) || error instanceof LeaseGoneError || leaseGone(error);
}
