// Starting a node over any reservation store: take ownership, apply the startup rules, make
// the first reservation durable. Only then is there a node that may issue.

import { HailstoneError } from '../errors.js';
import { createGenerator } from '../generator.js';
import { type HailstoneNode, Node } from './node.js';
import { iso } from './node-state.js';
import { type NodeRules, checkNodeRules } from './options.js';
import { OwnershipLostError, type ReservationStore, reachOf } from './store.js';

/**
 * Opens a node over any reservation store: takes ownership, applies the startup rules (a
 * first start waits one lead window; a clock further behind the stored reservation than
 * the lead refuses or waits), stores the first reservation and starts renewing.
 */
export async function startNode(store: ReservationStore, options: NodeRules, rules = checkNodeRules(options), stateFile?: string): Promise<HailstoneNode> {
  const { layout, nodeId, worker, maxLeadMs, reservationMs, maxStartupWaitMs, clock, logger, sleep, wallClock } = rules;
  const what = `node ${nodeId} (worker ${worker.index} of ${worker.count}) on ${store.where}`;
  const gen = createGenerator({ nodeId, backend: options.backend, layout, worker, clock, maxLeadMs, limit: -Infinity });

  const stored = await store.open();
  try {
    const firstStart = stored.firstStart;
    const now = clock();
    let floor = stored.floor ?? -Infinity;
    // Without state, a previous run may have issued ids up to its clock plus its lead: start
    // after that, and wait until the clock has passed it (one lead window).
    if (firstStart) floor = Math.max(floor, now + maxLeadMs);
    const waitUntil = firstStart ? floor : floor - maxLeadMs;
    const wait = waitUntil - now;
    if (wait > 0) {
      if (!firstStart && wait > maxStartupWaitMs) {
        const waitAdvice = `let the node wait for it with maxStartupWaitMs (--max-startup-wait-ms) of at least ${Math.ceil(wait)}`;
        throw new HailstoneError(
          'CLOCK_FAR_BEHIND',
          store.farAheadAdvice !== undefined
            ? `node ${nodeId}'s reservation in ${store.where} (${iso(floor)}) lies ${floor - now} ms past this clock (${iso(now)}): ` +
                `it was set by an instance whose clock ran at least ${Math.max(0, Math.floor((floor - now - maxLeadMs) / 1000))} s ahead of this one, and ids up to then may have been issued. ` +
                `${store.farAheadAdvice}; or ${waitAdvice}`
            : `the clock (${iso(now)}) is ${floor - now} ms behind the reservation in ${store.where} (${iso(floor)}): ` +
                `ids up to then may already have been issued, and the node may only run ${maxLeadMs} ms ahead of its clock. ` +
                `Fix the system clock (check NTP/chrony), or ${waitAdvice}`,
          { retryAfterMs: Math.ceil(wait) },
        );
      }
      logger.warn(
        { nodeId, worker: worker.index, waitMs: Math.ceil(wait), resumeAfter: iso(floor), firstStart },
        firstStart
          ? `no state: first start of ${what}; waiting ${Math.ceil(wait)} ms before issuing, in case an earlier run's state was lost`
          : `the clock is ${floor - now} ms behind the stored reservation; waiting ${Math.ceil(wait)} ms for it`,
      );
      options.onStartupWait?.({ reason: firstStart ? 'first start' : 'clock behind', waitMs: Math.ceil(wait), untilMs: wallClock() + Math.ceil(wait) });
      for (let left = wait; left > 0; left = waitUntil - clock()) await sleep(Math.min(left, 1000));
    }

    gen.resumeAfter(floor);
    const start = clock();
    let reservedUntil = Math.max(floor, Math.min(Math.max(start, floor) + reservationMs, start + maxLeadMs));
    const writeStarted = wallClock();
    try {
      reservedUntil = reachOf(reservedUntil, await store.save(reservedUntil, start));
    } catch (error) {
      if (!(error instanceof OwnershipLostError)) throw error;
      throw new HailstoneError('OWNERSHIP_LOST', `${what} lost its ${store.ownership} while starting: ${error.message}; it issued nothing. Find out why, then start again`);
    }
    gen.setLimit(reservedUntil);
    const firstWriteMs = wallClock() - writeStarted;
    logger.info(
      { nodeId, worker: worker.index, workers: worker.count, layout: layout.fingerprint, store: store.where, lock: store.ownership, firstStart, resumedAfter: iso(floor), clockBehindMs: Math.max(0, floor - start) },
      'node started',
    );
    return new Node({ gen, rules, store, stateFile, reservedUntil, firstStart, firstWriteMs });
  } catch (error) {
    await store.close().catch(() => undefined);
    throw error;
  }
}
