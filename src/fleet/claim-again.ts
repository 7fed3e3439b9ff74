// Which failures of claiming a node id (or of opening its node) a new claim can cure, so a
// member tries again rather than stop: etcd unreachable for a moment, a claim lost on the way,
// a lease that expired while the claim was being made, an error etcd answered with.

import { HailstoneError } from '../errors.js';
import { OwnershipLostError } from '../node/store.js';
import { coordinatorFailed } from './coordinator.js';
import { LeaseGoneError } from './lease-session.js';

export function claimAgainCures(error: unknown): boolean {
  if (error instanceof OwnershipLostError) return true;
  if (error instanceof HailstoneError) return error.code === 'OWNERSHIP_LOST' || error.code === 'COORDINATOR_UNAVAILABLE';
  // etcd unreachable, or answering with an error of its own (a leader change, too many
  // requests, a lease gone): transient, never a raw error out of a server's start.
  return coordinatorFailed(error) || error instanceof LeaseGoneError;
}
