// Free claims pass over node ids a fast-clocked predecessor left far ahead: an id whose
// stored reservation lies past this claimant's clock plus its lead would keep it waiting
// (or refusing) for as long as that clock ran ahead, while another free id serves at once.

import type { ClaimOptions } from './claim.js';
import { parseReservation, reservationsRoot } from './etcd.js';

/**
 * Orders free ids so that those whose stored reservation lies past the claimant's clock plus
 * its lead come last (they would keep it waiting, or refuse, for as long as their
 * predecessor's clock ran ahead), and says once which ids it passed over and why.
 */
export async function passOverFarAhead(options: ClaimOptions, candidates: number[], timed: <T>(request: Promise<T>) => Promise<T>): Promise<number[]> {
  const prefix = reservationsRoot(options.cluster);
  const stored = await timed(options.etcd.getAll().prefix(prefix).strings());
  const highest = new Map<number, number>();
  for (const [key, value] of Object.entries(stored)) {
    const nodeId = Number(key.slice(prefix.length).split('/')[0]);
    const r = parseReservation(value);
    // A damaged record is the node's own problem (STATE_CORRUPT when claimed): pass it over too.
    highest.set(nodeId, Math.max(highest.get(nodeId) ?? -Infinity, r ?? Infinity));
  }
  const limit = options.reservationLimit!();
  const ahead = candidates.filter((id) => (highest.get(id) ?? -Infinity) > limit);
  if (ahead.length === 0) return candidates;
  const key = ahead.join(',');
  // Said again only when the ids change: the claimant keeps what it said last.
  const said = options.passedOver ?? {};
  if (key !== said.last) {
    said.last = key;
    options.logger.warn(
      {
        cluster: options.cluster,
        passedOver: ahead.slice(0, 16).map((id) => ({ nodeId: id, aheadMs: Math.round(highest.get(id)! - limit) })),
        count: ahead.length,
      },
      `passing over ${ahead.length} free node id(s) (${ahead.slice(0, 8).join(', ')}${ahead.length > 8 ? ', …' : ''}) whose stored reservation lies past this clock plus its lead: an earlier holder's clock ran ahead; claiming another free id`,
    );
  }
  const set = new Set(ahead);
  return [...candidates.filter((id) => !set.has(id)), ...ahead];
}
