// The time and chance fleet mode runs on, as a parameter: the monotonic clock its leases and
// waits are measured on, the wall clock of its log lines, its timers, its random numbers and
// who the process is. A server passes the system's (src/system-runtime.ts); the fleet
// simulator passes one it drives in virtual time from a seed, so every wait, lease and race
// of src/fleet/ runs there exactly as in a server — and replays.

import { HailstoneError } from '../errors.js';
import type { ProcessIdentity } from './process-identity.js';

export interface Cancel {
  cancel(): void;
}

export interface FleetRuntime {
  /** A monotonic clock, ms: what leases, fences and waits are measured on. */
  now(): number;
  /** ms since the Unix epoch, as this machine's clock says. */
  wall(): number;
  /** Calls `fn` once after `ms`. A background timer alone does not keep a process alive. */
  after(ms: number, fn: () => void, background?: boolean): Cancel;
  /** Calls `fn` every `ms` (background work: it does not keep a process alive). */
  every(ms: number, fn: () => void): Cancel;
  /** A random number in [0, 1). */
  random(): number;
  /** A new instance id: 16 hex digits. */
  instanceId(): string;
  /** Who this process is, for the claim key: its host name, pid and, where /proc tells, its identity. */
  self(): { host: string; pid: number; identity: ProcessIdentity | undefined };
}

/** The error a wait ends with when its signal is aborted (the server is closing). */
export function closing(what: string): HailstoneError {
  return new HailstoneError('CLOSED', `stopped ${what}: the server is closing`);
}

/** A fixed pause on the runtime's timers that ends early, with CLOSED, when `signal` is aborted. */
export function pause(runtime: FleetRuntime, ms: number, signal: AbortSignal | undefined, what: string): Promise<void> {
  if (signal?.aborted) return Promise.reject(closing(what));
  return new Promise((resolve, reject) => {
    const onAbort = () => {
      timer.cancel();
      reject(closing(what));
    };
    const timer = runtime.after(Math.max(0, ms), () => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    });
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
