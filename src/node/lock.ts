// One process per state file: an exclusive lock file naming its owner.
//
// The lock is a file created with O_EXCL holding the owner's host, pid and the kernel's
// start time of that process. A lock whose owner is gone (killed with SIGKILL, say) is
// stale and taken over at once — no waiting for a timeout, so a crashed node restarts
// immediately. The start time tells a reused pid from the original owner. The takeover
// itself runs under a mutex directory so two processes cannot both take over one lock.

import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { HailstoneError } from '../errors.js';
import type { StorageFs } from './storage.js';

export interface LockOwner {
  host: string;
  pid: number;
  /** The process's start time as the kernel counts it ('' where unknown). */
  start: string;
}

/** Who this process is, and whether another owner is still running. */
export interface ProcessProbe {
  self(): LockOwner;
  isAlive(owner: LockOwner): boolean;
}

/** Start time (clock ticks since boot) and state of a process, from /proc; undefined where unavailable. */
function procStat(pid: number): { start: string; state: string } | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may contain spaces and parentheses: fields follow the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return { state: fields[0] ?? '', start: fields[19] ?? '' };
  } catch {
    return undefined;
  }
}

export const realProcesses: ProcessProbe = {
  self() {
    return { host: hostname(), pid: process.pid, start: procStat(process.pid)?.start ?? '' };
  },
  isAlive(owner) {
    if (owner.pid === process.pid) return true;
    try {
      process.kill(owner.pid, 0);
    } catch (error) {
      // EPERM: it exists but belongs to another user.
      return (error as NodeJS.ErrnoException).code === 'EPERM';
    }
    const stat = procStat(owner.pid);
    if (stat === undefined) return true; // no /proc: the pid exists, assume it is the owner
    if (stat.state === 'Z' || stat.state === 'X') return false; // exited, not yet reaped
    return owner.start === '' || stat.start === owner.start;
  },
};

const TAKEOVER_MUTEX_STALE_MS = 10_000;

function encodeOwner(owner: LockOwner): Uint8Array {
  return new TextEncoder().encode(`${JSON.stringify(owner)}\n`);
}

function parseOwner(bytes: Uint8Array): LockOwner | undefined {
  try {
    const o = JSON.parse(new TextDecoder().decode(bytes)) as Partial<LockOwner>;
    if (typeof o.host === 'string' && Number.isInteger(o.pid) && typeof o.start === 'string') {
      return { host: o.host, pid: o.pid!, start: o.start };
    }
  } catch {
    // fall through
  }
  return undefined;
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

export interface StateLock {
  readonly path: string;
  /** Removes the lock file if it is still this process's. */
  release(): Promise<void>;
}

export interface LockContext {
  fs: StorageFs;
  processes: ProcessProbe;
  sleep: (ms: number) => Promise<void>;
  /** Wall clock for the age of leftover mutexes (not the node's clock, which may be skewed). */
  wallClock: () => number;
}

/** Who holds the lock at `path` and whether they are alive; undefined when nobody does. */
export async function lockHolder(
  ctx: LockContext,
  path: string,
): Promise<{ owner: LockOwner | undefined; bytes: Uint8Array; live: boolean } | undefined> {
  const bytes = await ctx.fs.readFile(path);
  if (bytes === undefined) return undefined;
  const owner = parseOwner(bytes);
  // Locks are created atomically with their content, so an unreadable one is what a machine
  // crash left of a lock whose content never reached the disk: its owner died with the machine.
  if (owner === undefined) return { owner, bytes, live: false };
  const self = ctx.processes.self();
  // A lock from another host cannot be checked from here: treat it as live (fail closed).
  const live = owner.host !== self.host || ctx.processes.isAlive(owner);
  return { owner, bytes, live };
}

function lockedError(path: string, owner: LockOwner | undefined, what: string): HailstoneError {
  const who =
    owner === undefined
      ? 'another process (the lock could not be taken over)'
      : owner.host !== hostname()
        ? `process ${owner.pid} on host ${owner.host} (it cannot be checked from here)`
        : `process ${owner.pid}`;
  return new HailstoneError(
    'STATE_LOCKED',
    `${what} is in use by ${who} (lock file ${path}). Two processes must never issue ids as the same ` +
      'node and worker: stop the other one, or give this one another node id or worker index',
  );
}

/** Takes the lock at `path` or throws STATE_LOCKED. Stale locks are taken over. */
export async function acquireLock(ctx: LockContext, path: string, what: string): Promise<StateLock> {
  const self = ctx.processes.self();
  const mine = encodeOwner(self);
  const mutex = `${path}.takeover`;
  for (let attempt = 0; attempt < 50; attempt++) {
    if (await ctx.fs.createExclusive(path, mine)) {
      return {
        path,
        release: async () => {
          const now = await ctx.fs.readFile(path);
          if (now !== undefined && sameBytes(now, mine)) await ctx.fs.remove(path);
        },
      };
    }
    const holder = await lockHolder(ctx, path);
    if (holder === undefined) continue; // released meanwhile: try again
    if (holder.live) throw lockedError(path, holder.owner, what);
    // Stale. Take it over under the mutex, removing it only if it is still the stale one.
    if (await ctx.fs.makeExclusiveDir(mutex)) {
      try {
        const again = await ctx.fs.readFile(path);
        if (again !== undefined && sameBytes(again, holder.bytes)) await ctx.fs.remove(path);
      } finally {
        await ctx.fs.removeDir(mutex);
      }
    } else {
      const age = await ctx.fs.modifiedAt(mutex);
      if (age !== undefined && ctx.wallClock() - age > TAKEOVER_MUTEX_STALE_MS) await ctx.fs.removeDir(mutex);
      await ctx.sleep(20);
    }
  }
  throw lockedError(path, undefined, what);
}
