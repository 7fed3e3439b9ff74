// Waiting to try etcd again: one backoff for every retry loop of fleet mode, on the runtime's
// timers and random numbers, cancelled by the member's AbortSignal so that close() is prompt
// even while etcd does not answer.

import { type FleetRuntime, pause } from './runtime.js';

/** Exponential backoff with jitter (each wait 0.5–1.5 × the current step), capped. */
export class Backoff {
  private step: number;

  constructor(
    private readonly runtime: FleetRuntime,
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
    const ms = this.step * (0.5 + this.runtime.random());
    this.step = Math.min(this.maxMs, this.step * 2);
    await pause(this.runtime, ms, signal, what);
  }

  reset(): void {
    this.step = this.firstMs;
  }
}

