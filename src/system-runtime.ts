// The system's clocks, timers and chance, for fleet mode in a real server (src/fleet/runtime.ts
// says what it is for). The only place fleet mode's time reaches the real clock.

import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import type { FleetRuntime } from './fleet/runtime.js';
import { ownIdentity, serverHostname } from './fleet/process-identity.js';

export const systemRuntime: FleetRuntime = {
  now: () => performance.now(),
  wall: () => Date.now(),
  after(ms, fn, background = false) {
    const timer = setTimeout(fn, ms);
    if (background) timer.unref();
    return { cancel: () => clearTimeout(timer) };
  },
  every(ms, fn) {
    const timer = setInterval(fn, ms);
    timer.unref();
    return { cancel: () => clearInterval(timer) };
  },
  random: () => Math.random(),
  instanceId: () => randomBytes(8).toString('hex'),
  self: () => ({ host: serverHostname(), pid: process.pid, identity: ownIdentity() }),
};
