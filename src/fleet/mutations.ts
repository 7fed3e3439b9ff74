// Past fleet bugs, kept re-introducible one at a time so the fleet simulator's tests can
// prove it finds each of them (test/fleet.sim.test.ts, the table in docs/guarantees.md) —
// the way FoundationDB's BUGGIFY lets its simulator reach rare paths. The set is empty in
// every server and every other test; nothing outside the simulator's tests adds to it.

export type FleetMutation =
  /**
   * The claim compare dropped everywhere: a claim transaction that takes the key even when
   * another holds it, and reservation writes that do not check the claim is still theirs.
   */
  | 'no-claim-compare'
  /** A node resumes below the stored floor after a restart: sequences of the ms before reused. */
  | 'resume-below-floor'
  /**
   * A given node id's claim wait counted from the process's start, not from etcd's first
   * answer, and given up at its end unless the holder's lease was about to end (the old rule).
   */
  | 'claim-wait-from-start'
  /** A keepalive answered "lease not found" fences at once, without reading the claim key. */
  | 'deposed-leader-fences'
  /** A reservation write whose answer was lost, found landed by the next write, fences. */
  | 'landed-write-fences'
  /** Free claims take ids a fast-clocked predecessor left far ahead, without passing over them. */
  | 'far-ahead-taken';

export const FLEET_MUTATIONS: readonly FleetMutation[] = ['no-claim-compare', 'resume-below-floor', 'claim-wait-from-start', 'deposed-leader-fences', 'landed-write-fences', 'far-ahead-taken'];

const active = new Set<FleetMutation>();

/** Whether a past bug is switched back on (only ever by the simulator's tests). */
export function mutated(mutation: FleetMutation): boolean {
  return active.size > 0 && active.has(mutation);
}

/** Switches one past bug back on until the returned function is called. */
export function mutate(mutation: FleetMutation): () => void {
  active.add(mutation);
  return () => active.delete(mutation);
}
