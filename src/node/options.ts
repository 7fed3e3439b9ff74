// What a node is opened with: its options, checked and defaulted once (the rules every
// store shares), and the time it runs on — the id clock, the wall clock and the timer of its
// periodic work, each injectable so the tricky cases are tested without waiting.

import { InvalidArgumentError, checkInteger, describe } from '../errors.js';
import { DEFAULT_MAX_LEAD_MS, MAX_LEAD_MS_LIMIT, type Backend } from '../generator.js';
import { DEFAULT_LAYOUT, type Layout, type WorkerOptions, type WorkerStripe, workerStripe } from '../layout.js';
import { type NodeLogger, stderrLogger } from '../logger.js';
import type { KernelLocks } from './kernel-lock.js';
import type { ProcessProbe } from './lock.js';
import type { StorageFs } from './storage.js';

/** What a starting node waits for before it may issue, and until when (ms on the wall clock). */
export interface StartupWait {
  reason: 'first start' | 'clock behind';
  untilMs: number;
  waitMs: number;
}

export interface NodeOptions {
  nodeId: number;
  /** Directory for the state and lock files. Local, durable storage; created if missing. */
  stateDir: string;
  backend?: Backend;
  layout?: Layout;
  worker?: WorkerOptions;
  /** Default 2000. */
  maxLeadMs?: number;
  /** How far ahead of the clock each durable reservation reaches. 1..maxLeadMs. Default 1000 (or maxLeadMs if smaller). */
  reservationMs?: number;
  /** ms since the Unix epoch. Default Date.now. */
  clock?: () => number;
  /** Added to every clock reading: rehearse clock steps (drills, tests). Default 0. */
  clockSkewMs?: number;
  /**
   * How long the node may wait at startup for a clock that is behind the stored reservation
   * before it refuses to start with CLOCK_FAR_BEHIND. Default 0: refuse at once.
   */
  maxStartupWaitMs?: number;
  /** Start over from an unreadable or mismatched state file, as a first start. Default false. */
  resetState?: boolean;
  logger?: NodeLogger;
  /** Told when startup must wait before the first id (a first start, a clock behind the state). */
  onStartupWait?: (wait: StartupWait) => void;
  /** File-system access (tests inject faults here). Default: the real file system. */
  fs?: StorageFs;
  /** Who this process is and whether a lock's owner still runs. Default: the real process table. */
  processes?: ProcessProbe;
  /**
   * The kernel's flock on lock files, or false for the portable lock alone. Default: flock
   * where the native lock addon loads and the file system is the real one.
   */
  kernelLocks?: KernelLocks | false;
  /** Waits `ms` of the clock's time. Default: a timer. */
  sleep?: (ms: number) => Promise<void>;
  /**
   * Real elapsed time, for retry-afters, backoff, ownership checks and write durations (the
   * id clock, `clock`, may be skewed or stepped). Default Date.now.
   */
  wallClock?: () => number;
  /** Runs the node's periodic work (renewal, ownership check, clock watch). Default: a real, unref'd interval. */
  timer?: NodeTimer;
}

/** Calls `tick` every `periodMs` until cancelled. Tests pass one they drive by hand. */
export interface NodeTimer {
  every(periodMs: number, tick: () => void): { cancel(): void };
}

export const realTimer: NodeTimer = {
  every(periodMs, tick) {
    const interval = setInterval(tick, periodMs);
    // The node's work alone must not keep a process alive.
    interval.unref();
    return { cancel: () => clearInterval(interval) };
  },
};

export const DEFAULT_RESERVATION_MS = 1000;

function realSleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, Math.max(0, ms)));
}


/** Options every store shares: what the node is and how it keeps time. */
export type NodeRules = Omit<NodeOptions, 'stateDir' | 'fs' | 'processes' | 'kernelLocks' | 'resetState'>;

export interface CheckedRules {
  layout: Layout;
  nodeId: number;
  worker: WorkerStripe;
  maxLeadMs: number;
  reservationMs: number;
  maxStartupWaitMs: number;
  clock: () => number;
  logger: NodeLogger;
  sleep: (ms: number) => Promise<void>;
  wallClock: () => number;
  timer: NodeTimer;
}

/** Checks the options every node has; throws InvalidArgumentError naming the bad one. */
export function checkNodeRules(options: NodeRules): CheckedRules {
  if (options === null || typeof options !== 'object') {
    throw new InvalidArgumentError('options', `must be an object with nodeId and stateDir, got ${describe(options)}`);
  }
  const layout = options.layout ?? DEFAULT_LAYOUT;
  const nodeId = checkInteger('nodeId', options.nodeId, 0, layout.maxNodeId);
  const worker = workerStripe(layout, options.worker);
  const { maxLeadMs, reservationMs } = checkReservationMs(options.maxLeadMs, options.reservationMs);
  const skew = checkInteger('clockSkewMs', options.clockSkewMs ?? 0, -MAX_LEAD_MS_LIMIT * 365, MAX_LEAD_MS_LIMIT * 365);
  const maxStartupWaitMs = checkInteger('maxStartupWaitMs', options.maxStartupWaitMs ?? 0, 0, MAX_LEAD_MS_LIMIT);
  const baseClock = options.clock ?? Date.now;
  if (typeof baseClock !== 'function') throw new InvalidArgumentError('clock', `must be a function, got ${describe(baseClock)}`);
  const clock = skew === 0 ? baseClock : () => baseClock() + skew;
  const wallClock = options.wallClock ?? Date.now;
  if (typeof wallClock !== 'function') throw new InvalidArgumentError('wallClock', `must be a function, got ${describe(wallClock)}`);
  return {
    layout,
    nodeId,
    worker,
    maxLeadMs,
    reservationMs,
    maxStartupWaitMs,
    clock,
    logger: options.logger ?? stderrLogger,
    sleep: options.sleep ?? realSleep,
    wallClock,
    timer: options.timer ?? realTimer,
  };
}

/**
 * The shortest reservation (and so lead) a node accepts. A node renews when half of it is
 * used, and each renewal is a durable write (an fsync, or an etcd transaction): shorter
 * windows leave the write no time, and the node refuses more than it issues.
 */
export const MIN_RESERVATION_MS = 50;

/** maxLeadMs and reservationMs of a node, defaulted and checked together. */
export function checkReservationMs(maxLeadMsOption: number | undefined, reservationMsOption: number | undefined): { maxLeadMs: number; reservationMs: number } {
  const maxLeadMs = checkInteger('maxLeadMs', maxLeadMsOption ?? DEFAULT_MAX_LEAD_MS, MIN_RESERVATION_MS, MAX_LEAD_MS_LIMIT);
  const reservationMs = checkInteger('reservationMs', reservationMsOption ?? Math.min(DEFAULT_RESERVATION_MS, maxLeadMs), MIN_RESERVATION_MS, MAX_LEAD_MS_LIMIT);
  if (reservationMs > maxLeadMs) {
    throw new InvalidArgumentError(
      'reservationMs',
      `must be at most maxLeadMs (${maxLeadMs}), got ${reservationMs}: a restart must find the reservation within the lead`,
    );
  }
  return { maxLeadMs, reservationMs };
}

