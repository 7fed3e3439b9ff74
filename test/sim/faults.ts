// The faults of one simulated run, drawn from its seed. Each seed draws its own mix (swarm
// testing): some kinds are left out, the rest weighted at random, so some seeds are calm,
// some are storms and some hammer one kind of fault.

import { prng } from '../support/seed.js';
import { subSeed } from './sim-process.js';

export type FaultKind =
  | 'crash' // SIGKILL a member's process; it restarts a little later
  | 'pause' // SIGSTOP it for a while, sometimes past its lease
  | 'clock-back' // its machine's clock steps back
  | 'clock-ahead' // … or jumps ahead
  | 'partition' // it cannot reach the coordinator for a while
  | 'delay' // every request and reply is slow for a while
  | 'reply-loss' // requests are applied but some answers never arrive
  | 'deposed-leader' // some keepalives are answered "lease not found" by a deposed leader
  | 'election' // no leader for a while: every request stalls
  | 'whole-restart'; // every member and the coordinator at once

export const FAULT_KINDS: FaultKind[] = ['crash', 'pause', 'clock-back', 'clock-ahead', 'partition', 'delay', 'reply-loss', 'deposed-leader', 'election', 'whole-restart'];

export interface Fault {
  at: number;
  kind: FaultKind;
  /** The member it hits; undefined for the coordinator and the network (every member). */
  member: number | undefined;
  /** How long it lasts (or, for a clock step, how far), ms. */
  ms: number;
  /** For reply loss and deposed answers: the chance per request. */
  chance: number;
}

export interface FaultPlanOptions {
  seed: number;
  members: number;
  /** When faults may happen: [from, until) in virtual ms. */
  from: number;
  until: number;
  /** Faults per simulated minute. */
  perMinute: number;
  leaseTtlS: number;
  /** Only these kinds (a test that hammers one); default every kind, weighted by the seed. */
  kinds?: FaultKind[];
}

export function planFaults(options: FaultPlanOptions): Fault[] {
  const random = prng(subSeed(options.seed, 'faults'));
  const kinds = options.kinds ?? FAULT_KINDS;
  // Swarm: each kind is left out with chance 1/4 (never all), the rest weighted at random.
  let weights = kinds.map(() => (random() < 0.25 ? 0 : random()));
  if (weights.every((w) => w === 0)) weights = kinds.map(() => 1);
  // A whole-system restart is rare even when drawn: a few per run at most.
  weights = weights.map((w, i) => (kinds[i] === 'whole-restart' ? w / 8 : w));
  const total = weights.reduce((a, b) => a + b, 0);
  const count = Math.round(((options.until - options.from) / 60_000) * options.perMinute);
  const ttlMs = options.leaseTtlS * 1000;
  const faults: Fault[] = [];
  for (let i = 0; i < count; i++) {
    let pick = random() * total;
    let k = 0;
    while (pick >= weights[k]! && k < kinds.length - 1) pick -= weights[k++]!;
    const kind = kinds[k]!;
    const at = Math.floor(options.from + random() * (options.until - options.from));
    const member = ['delay', 'reply-loss', 'deposed-leader', 'election', 'whole-restart'].includes(kind) ? undefined : Math.floor(random() * options.members);
    const ms = {
      crash: 100 + random() * 5000, // down this long before the restart
      pause: 50 + random() * 2 * ttlMs, // sometimes well past the lease
      'clock-back': 10 + random() * 5000,
      // Mostly small; now and then a step of half a minute (an NTP server that was wrong).
      'clock-ahead': random() < 0.25 ? 5000 + random() * 25_000 : 10 + random() * 5000,
      partition: 200 + random() * 2 * ttlMs,
      delay: 500 + random() * 10_000,
      'reply-loss': 500 + random() * 10_000,
      'deposed-leader': 500 + random() * 10_000,
      election: 100 + random() * 3000,
      'whole-restart': 1000 + random() * 10_000,
    }[kind];
    faults.push({ at, kind, member, ms: Math.floor(ms), chance: 0.05 + random() * 0.45 });
  }
  return faults.sort((a, b) => a.at - b.at);
}
