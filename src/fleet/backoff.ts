// Waiting to try etcd again: one backoff for every retry loop of fleet mode, cancelled by the
// member's AbortSignal so that close() is prompt even while etcd does not answer.

import { setTimeout as sleep } from 'node:timers/promises';
import { HailstoneError } from '../errors.js';

/** The error a wait ends with when its signal is aborted (the server is closing). */
export function closing(what: string): HailstoneError {
  return new HailstoneError('CLOSED', `stopped ${what}: the server is closing`);
}

/** Exponential backoff with jitter (each wait 0.5–1.5 × the current step), capped. */
export class Backoff {
  private step: number;

  constructor(
    private readonly firstMs: number,
    private readonly maxMs: number,
  ) {
    this.step = firstMs;
  }

  /** The next wait will be this long, give or take the jitter (for log lines). */
  get nextMs(): number {
    return this.step;
  }

  /** Waits the next step; rejects with CLOSED at once when `signal` is aborted. */
  async wait(signal: AbortSignal | undefined, what: string): Promise<void> {
    const ms = this.step * (0.5 + Math.random());
    this.step = Math.min(this.maxMs, this.step * 2);
    await pause(ms, signal, what);
  }

  reset(): void {
    this.step = this.firstMs;
  }
}

/** A fixed pause that ends early, with CLOSED, when `signal` is aborted. */
export async function pause(ms: number, signal: AbortSignal | undefined, what: string): Promise<void> {
  if (signal?.aborted) throw closing(what);
  try {
    await sleep(ms, undefined, signal === undefined ? undefined : { signal });
  } catch (error) {
    if (signal?.aborted) throw closing(what);
    throw error;
  }
}
