// Free claims pass over node ids a fast-clocked predecessor left far ahead: an id whose
// stored reservation lies past this claimant's clock plus its lead would keep it waiting
// (or refusing) for as long as that clock ran ahead, while another free id serves at once.
// Only the id a claimant has just won is looked at (its reservations come back with the
// claim, in the same transaction): no claimant reads every node id's reservations.

import type { KeyValue } from './coordinator.js';
import type { NodeLogger } from '../logger.js';
import { parseReservation } from './etcd.js';

/** The highest reservation among a node id's keys: -Infinity for none; Infinity when one is damaged (STATE_CORRUPT when opened: pass it over too). */
export function highestReservation(kvs: KeyValue[]): number {
  let highest = -Infinity;
  for (const kv of kvs) highest = Math.max(highest, parseReservation(kv.value) ?? Infinity);
  return highest;
}

/** Says which free ids were passed over and why — again only when the ids change (the claimant keeps what it said last). */
export function sayPassedOver(logger: NodeLogger, cluster: string, passed: ReadonlyMap<number, number>, said: { last?: string }): void {
  const ids = [...passed.keys()].sort((a, b) => a - b);
  const key = ids.join(',');
  if (ids.length === 0 || key === said.last) return;
  said.last = key;
  logger.warn(
    {
      cluster,
      passedOver: ids.slice(0, 16).map((id) => ({ nodeId: id, aheadMs: Number.isFinite(passed.get(id)) ? Math.round(passed.get(id)!) : null })),
      count: ids.length,
    },
    `passing over ${ids.length} free node id(s) (${ids.slice(0, 8).join(', ')}${ids.length > 8 ? ', …' : ''}) whose stored reservation lies past this clock plus its lead: an earlier holder's clock ran ahead; claiming another free id`,
  );
}
