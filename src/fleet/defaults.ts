// Fleet mode's defaults, in a module of constants alone: the command line declares its
// flags with them without loading etcd's client or anything else of fleet mode.

/** Node ids are unique within a cluster; servers and clients given no name share this one. */
export const DEFAULT_CLUSTER = 'default';

/** Lease TTL, seconds: how long after a holder dies its node id can move. */
export const DEFAULT_LEASE_TTL_S = 10;
/** The lease TTLs accepted, seconds: etcd's minimum is 2 (one keepalive per third of it); past an hour a dead holder's id is stuck too long. */
export const MIN_LEASE_TTL_S = 2;
export const MAX_LEASE_TTL_S = 3600;

/** At startup, how long a server keeps trying to reach etcd before COORDINATOR_UNAVAILABLE. */
export const DEFAULT_COORDINATOR_WAIT_MS = 30_000;

/**
 * How long a claim for a given node id waits for its holder by default: past the holder's
 * lease, so a server restarted right after a crash takes its id back once the dead
 * predecessor's lease has run out, instead of failing with NODE_ID_TAKEN naming itself.
 * A free claim never waits.
 */
export function defaultClaimWaitMs(nodeIdGiven: boolean, leaseTtlS: number): number {
  return nodeIdGiven ? leaseTtlS * 1000 + 1000 : 0;
}
