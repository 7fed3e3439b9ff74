// Asking a node for an id the way a patient caller would: a node on a loaded machine may
// refuse for a moment (LIMIT_REACHED while its renewal is written, CLOCK_BEHIND while the
// clock catches up) with a retry-after. Tests that want an id, not a refusal, wait it out.

import { HailstoneError, type HailstoneNode } from '../../src/index.js';

const WAITABLE = new Set(['LIMIT_REACHED', 'CLOCK_BEHIND']);

export async function issue(node: Pick<HailstoneNode, 'nextId'>, timeoutMs = 10_000): Promise<bigint> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    try {
      return node.nextId();
    } catch (error) {
      if (!(error instanceof HailstoneError) || !WAITABLE.has(error.code) || Date.now() > until) throw error;
      await new Promise((r) => setTimeout(r, Math.min(error.retryAfterMs ?? 20, 200)));
    }
  }
}
