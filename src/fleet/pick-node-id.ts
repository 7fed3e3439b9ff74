// Which free node id a claimant tries next.
//
// Every claimant of a fleet starting at once (a whole-system restart, a region coming back,
// a Deployment scaled up) sees the same free ids. If each tried the lowest, the k-th winner
// would first lose k races, one etcd transaction each: O(n) requests per claimant, O(n²) for
// the fleet. Each instead takes a random one among the lowest free ids, in a window that
// grows with the claims it saw: collisions stay rare, a lost race costs one transaction and
// one read of the claims as they are now, and a fleet of n nodes still holds ids
// below about 3n + 64 — dense enough to read in `fleet status` and on dashboards.

/** The window: this many of the lowest free ids, at least, plus two per claim seen. */
export const PICK_WINDOW_MIN = 64;

/**
 * A free node id, uniformly among the lowest `PICK_WINDOW_MIN + 2 × taken.size` ids that
 * are neither taken nor excluded; undefined when there is none.
 */
export function pickFreeNodeId(taken: ReadonlySet<number>, excluded: { has(id: number): boolean }, maxNodeId: number, random: () => number): number | undefined {
  const window = PICK_WINDOW_MIN + 2 * taken.size;
  const free: number[] = [];
  for (let id = 0; id <= maxNodeId && free.length < window; id++) if (!taken.has(id) && !excluded.has(id)) free.push(id);
  if (free.length === 0) return undefined;
  return free[Math.min(free.length - 1, Math.floor(random() * free.length))];
}
