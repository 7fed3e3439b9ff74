// What a node says in its log about conditions that are not failures but will cost
// refusals or deserve a look: writes too slow for the lead, the clock stepping back. Each
// is said once when it starts (and, for slow writes, once when it passes), not per event.

import type { Generator } from '../generator.js';
import type { NodeLogger } from '../logger.js';
import type { RenewalPlanner } from './renewal.js';
import type { ReservationStore } from './store.js';

export class NodeWarnings {
  private clockRegressionsLogged = 0;
  private tooSlowLogged = false;

  constructor(
    private readonly logger: NodeLogger,
    private readonly node: { nodeId: number; worker: number; maxLeadMs: number; store: ReservationStore },
  ) {}

  /** Says once, and again when it passes, that the store is too slow for the lead. */
  writeSpeed(planner: RenewalPlanner): void {
    const slow = planner.tooSlowForLead;
    if (slow === this.tooSlowLogged) return;
    this.tooSlowLogged = slow;
    const { nodeId, worker, maxLeadMs, store } = this.node;
    const neededMarginMs = Math.round(planner.wantedMarginMs());
    const timerLagMs = Math.round(planner.worstTimerLagMs);
    const fields = { nodeId, worker, slowestWriteMs: planner.slowestWriteMs, timerLagMs, neededMarginMs, maxLeadMs };
    if (slow) {
      // Say what to fix: a late event loop (a stopped or starved process) is no reason to move the state.
      const advice =
        timerLagMs > 2 * planner.slowestWriteMs
          ? `the node's timer ran ${timerLagMs} ms late: the process was stopped (SIGSTOP, a debugger, a frozen VM) or starved of CPU — give it CPU, or raise maxLeadMs (--max-lead-ms) if such pauses are normal here`
          : (store.slowWriteAdvice ?? 'raise maxLeadMs (--max-lead-ms) or put the state on faster storage');
      this.logger.warn(
        fields,
        `reservation writes (slowest recent: ${planner.slowestWriteMs} ms) and event-loop lag (worst recent: ${timerLagMs} ms) need ${neededMarginMs} ms of reservation left at each renewal, ` +
          `more than a ${maxLeadMs} ms lead allows: expect refusals under load; ${advice}`,
      );
    } else this.logger.info(fields, 'reservation writes fit the lead again');
  }

  /** Logs each new episode of the clock stepping back (seen by the generator on its calls). */
  clockSteps(gen: Generator, now: number): void {
    const { clockRegressions } = gen.counters();
    if (clockRegressions === this.clockRegressionsLogged) return;
    this.clockRegressionsLogged = clockRegressions;
    const { nodeId, worker, maxLeadMs } = this.node;
    this.logger.warn(
      { nodeId, worker, clockRegressions, leadMs: Math.max(0, (gen.lastTimestamp() ?? now) - now), maxLeadMs },
      'the clock stepped back: issuing on logical time ahead of it, within maxLeadMs',
    );
  }
}
