// A node's condition as one value, and what a node in each state answers: the status it
// refuses with, why, how long to wait, and whether it is healthy. Pure functions of the
// state and what the node tells them; node.ts makes the transitions.

import { MAX_CLOCK_MS, STATUS_CLOCK_BEHIND, STATUS_CLOSED, STATUS_LIMIT_REACHED } from '../core/constants.js';
import { HailstoneError } from '../errors.js';
import type { Generator } from '../generator.js';
import type { NodeStatus, RefusalReason } from './hailstone-node.js';
import type { ReservationStore } from './store.js';

export type StorageError = NonNullable<NodeStatus['lastStorageError']>;

/**
 * What a node is doing. Issuing: within its reservation, renewing it ahead of time.
 * Storage failing: renewals fail and are retried from `retryAt`; it issues up to the old
 * reservation, then refuses. Ownership lost: the store disproved ownership; it issues
 * nothing more, ever. Closed: by its holder — and if it had lost ownership first, it keeps
 * saying so, since that, not the close, is what a caller must act on.
 */
export type NodeState =
  | { kind: 'issuing' }
  | { kind: 'storage-failing'; since: number; retryAt: number; lastError: StorageError; failure: string | undefined }
  | { kind: 'ownership-lost'; reason: string }
  | { kind: 'closed'; ownershipLost: string | undefined };

/** What the answers depend on besides the state. */
export interface NodeFacts {
  nodeId: number;
  store: ReservationStore;
  gen: Generator;
  /** Real time now, ms. */
  wallNow: number;
  /** The store's writes are too slow for the lead (renewal.ts). */
  tooSlowForLead: boolean;
}

/** The shortest retry-after: a renewal is on its way. */
export const RETRY_MIN_MS = 20;
/** Retry-after for a node that lost its node id: waiting does not help, another server should be asked. */
const OWNERSHIP_LOST_RETRY_MS = 60_000;

/** A time for messages: ISO 8601 where it is one, the number otherwise. */
export function iso(ms: number): string {
  return Math.abs(ms) <= MAX_CLOCK_MS ? new Date(ms).toISOString() : String(ms);
}

/** Whether the node still issues (or may again): neither closed nor without its node id. */
export function running(state: NodeState): boolean {
  return state.kind === 'issuing' || state.kind === 'storage-failing';
}

/** Why ownership was lost, in whichever state says so. */
export function lostOwnership(state: NodeState): string | undefined {
  return state.kind === 'ownership-lost' ? state.reason : state.kind === 'closed' ? state.ownershipLost : undefined;
}

/** The status a stopped node answers every request with; undefined while it may issue. */
export function stoppedStatus(state: NodeState): number | undefined {
  switch (state.kind) {
    case 'ownership-lost':
      return STATUS_LIMIT_REACHED;
    case 'closed':
      return state.ownershipLost !== undefined ? STATUS_LIMIT_REACHED : STATUS_CLOSED;
    default:
      return undefined;
  }
}

export function ownershipLostText(store: ReservationStore, reason: string): string {
  return `lost its ${store.ownership}: ${reason}. It stopped issuing ids; ${store.afterLoss}`;
}

function lostRetryAfterMs(store: ReservationStore): number {
  return store.lostRetryAfterMs ?? OWNERSHIP_LOST_RETRY_MS;
}

export function refusalReason(state: NodeState, status: number, facts: Pick<NodeFacts, 'tooSlowForLead'>): RefusalReason {
  if (status === STATUS_CLOCK_BEHIND) return 'clock_behind';
  if (status !== STATUS_CLOSED && status !== STATUS_LIMIT_REACHED) return 'clock';
  switch (state.kind) {
    case 'ownership-lost':
      return 'ownership';
    case 'closed':
      return state.ownershipLost !== undefined ? 'ownership' : 'closed';
    case 'storage-failing':
      return state.failure?.startsWith('coordinator') === true ? 'coordinator' : 'storage';
    case 'issuing':
      // Nothing failing: either the writes are too slow for the lead (no rule can keep up),
      // or a renewal was late, which is never expected.
      return status === STATUS_CLOSED ? 'closed' : facts.tooSlowForLead ? 'slow_storage' : 'reservation';
  }
}

export function retryAfterMs(state: NodeState, status: number, facts: NodeFacts): number | undefined {
  if (status === STATUS_CLOSED) return undefined;
  if (status !== STATUS_LIMIT_REACHED) return facts.gen.retryAfterMs(status);
  switch (state.kind) {
    case 'ownership-lost':
      return lostRetryAfterMs(facts.store);
    case 'closed':
      return state.ownershipLost !== undefined ? lostRetryAfterMs(facts.store) : RETRY_MIN_MS;
    case 'storage-failing':
      return Math.max(RETRY_MIN_MS, state.retryAt - facts.wallNow);
    case 'issuing':
      return RETRY_MIN_MS;
  }
}

export function refusalOf(state: NodeState, status: number, facts: NodeFacts): HailstoneError {
  const { nodeId } = facts;
  if (status === STATUS_CLOSED) return new HailstoneError('CLOSED', `node ${nodeId} is closed; open it again with openNode`);
  if (status !== STATUS_LIMIT_REACHED) return facts.gen.refusalOf(status);
  const retryAfter = retryAfterMs(state, status, facts)!;
  const lost = lostOwnership(state);
  if (lost !== undefined) return new HailstoneError('OWNERSHIP_LOST', `node ${nodeId} ${ownershipLostText(facts.store, lost)}`, { retryAfterMs: retryAfter });
  const why =
    state.kind === 'storage-failing'
      ? `the reservation cannot be extended: ${state.failure ?? 'storage is failing'} (${state.lastError.message})`
      : 'the reservation is being extended';
  return new HailstoneError('LIMIT_REACHED', `node ${nodeId} reached its durable reservation; ${why}; retry in ${retryAfter} ms`, { retryAfterMs: retryAfter });
}

/** Why the node is not healthy now, and when it may be again; both undefined when it is. */
export function unhealthy(state: NodeState, facts: NodeFacts & { now: number; reservedUntil: number }): { reason: string | undefined; retryAfterMs: number | undefined } {
  switch (state.kind) {
    case 'ownership-lost':
      return { reason: ownershipLostText(facts.store, state.reason), retryAfterMs: lostRetryAfterMs(facts.store) };
    case 'closed':
      if (state.ownershipLost !== undefined) return { reason: ownershipLostText(facts.store, state.ownershipLost), retryAfterMs: lostRetryAfterMs(facts.store) };
      return { reason: 'closed', retryAfterMs: undefined };
    case 'storage-failing':
      return { reason: `${state.failure ?? 'storage errors'} since ${iso(state.since)}: ${state.lastError.message}`, retryAfterMs: Math.max(RETRY_MIN_MS, state.retryAt - facts.wallNow) };
    case 'issuing': {
      // Could it issue right now? (A clock stepped back past the lead refuses every request.)
      const peek = facts.gen.peek();
      if (peek.status !== 0 && peek.status !== STATUS_LIMIT_REACHED) return { reason: `cannot issue now: ${facts.gen.refusalOf(peek.status).message}`, retryAfterMs: peek.retryAfterMs };
      if (facts.reservedUntil <= facts.now) return { reason: 'the reservation is not ahead of the clock (renewal pending or the clock jumped forward)', retryAfterMs: RETRY_MIN_MS };
      return { reason: undefined, retryAfterMs: undefined };
    }
  }
}
