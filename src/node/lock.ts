// Lock files: one process per node and worker stripe, and a short-lived lock that makes
// the startups of one node id take turns.
//
// A lock is a file created atomically with its content: the owner's host, pid, the
// kernel's start time of that process and the machine's boot id. Where the kernel lock is
// available (native/lock.c), the file is also flocked from before its name appears until
// its owner releases it or dies.
//
// Whether an owner still lives:
//  - its file is flocked by someone: alive;
//  - it recorded a flock and nobody holds it now: gone (the kernel released it) — exact,
//    whatever pid a later process gets and in whatever PID namespace;
//  - otherwise (an owner without the kernel lock, or none here): another host cannot be
//    checked and counts as alive; another boot id means the machine rebooted since; else
//    it is alive only if a process with its pid and its start time exists. Our own pid
//    with another start time is not us: a restart in a new PID namespace, where pids repeat.
// A stale lock is taken over at once — no timeout to wait out after a crash.
//
// Holding a lock is proved, not assumed: verify() checks that the name still refers to
// the very file this process created, with its content. A lock file deleted (by a tmp
// cleaner, say) or replaced counts as lost; it is never created again by the process that
// lost it (see node.ts for what the node does then).

import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { HailstoneError } from '../errors.js';
import type { KernelHeldFile, KernelLocks } from './kernel-lock.js';
import type { StorageFs } from './storage.js';

export interface LockOwner {
  host: string;
  pid: number;
  /** The process's start time as the kernel counts it ('' where unknown). */
  start: string;
  /** The machine's boot id ('' where unknown). */
  boot: string;
}

/** Who this process is, and whether another owner is still running. */
export interface ProcessProbe {
  self(): LockOwner;
  /** For an owner on this host: does that very process (pid, start time, boot) still run? */
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

function bootId(): string {
  try {
    return readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
  } catch {
    return '';
  }
}

let selfCache: LockOwner | undefined;

export const realProcesses: ProcessProbe = {
  self() {
    selfCache ??= { host: hostname(), pid: process.pid, start: procStat(process.pid)?.start ?? '', boot: bootId() };
    return selfCache;
  },
  isAlive(owner) {
    const self = realProcesses.self();
    if (owner.boot !== '' && self.boot !== '' && owner.boot !== self.boot) return false; // from before a reboot
    if (owner.pid === self.pid) {
      // Our pid: it is us only if the start time is ours too (unknown start times: assume so).
      return owner.start === '' || self.start === '' || owner.start === self.start;
    }
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

/** What a lock file holds: its owner, whether the owner holds the kernel lock on it, and a token of this acquisition. */
interface LockRecord extends LockOwner {
  flock: boolean;
  /** Random per acquisition: no two lock files ever hold the same bytes, even from one process. */
  token?: string;
}

function encodeRecord(record: LockRecord): Uint8Array {
  return new TextEncoder().encode(`${JSON.stringify(record)}\n`);
}

function parseRecord(bytes: Uint8Array): LockRecord | undefined {
  try {
    const o = JSON.parse(new TextDecoder().decode(bytes)) as Partial<LockRecord>;
    if (typeof o.host === 'string' && Number.isInteger(o.pid) && typeof o.start === 'string') {
      return { host: o.host, pid: o.pid!, start: o.start, boot: typeof o.boot === 'string' ? o.boot : '', flock: o.flock === true };
    }
  } catch {
    // fall through
  }
  return undefined;
}

export function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

export interface LockContext {
  fs: StorageFs;
  processes: ProcessProbe;
  /** The kernel lock, where available (real files only). */
  kernel: KernelLocks | undefined;
  sleep: (ms: number) => Promise<void>;
  /** Wall clock for waits and the age of leftover mutexes (not the node's clock, which may be skewed). */
  wallClock: () => number;
}

export interface LockHolder {
  owner: LockOwner | undefined;
  bytes: Uint8Array;
  live: boolean;
}

/** Who holds the lock at `path` and whether they are alive; undefined when nobody does. */
export async function lockHolder(ctx: LockContext, path: string): Promise<LockHolder | undefined> {
  // The content and the kernel lock must be of the same file: read both between two
  // identical identities, or fail closed when the name keeps changing.
  let bytes: Uint8Array | undefined;
  for (let tries = 0; tries < 10; tries++) {
    const before = await ctx.fs.identity(path);
    if (before === undefined) return undefined;
    bytes = await ctx.fs.readFile(path);
    if (bytes === undefined) return undefined;
    const kernel = ctx.kernel === undefined ? undefined : await ctx.kernel.probe(path);
    if ((await ctx.fs.identity(path)) === before) return judge(ctx, bytes, kernel);
  }
  return { owner: parseRecord(bytes!), bytes: bytes!, live: true };
}

function judge(ctx: LockContext, bytes: Uint8Array, kernel: 'held' | 'free' | undefined): LockHolder {
  const record = parseRecord(bytes);
  if (kernel === 'held') return { owner: record, bytes, live: true };
  // Locks are created atomically with their content, so an unreadable one is what a machine
  // crash left of a lock whose content never reached the disk: its owner died with the machine.
  if (record === undefined) return { owner: record, bytes, live: false };
  // It held the kernel lock for as long as it lived, and nobody holds it now: gone — unless
  // its owner still runs here (this file is a copy, or was moved back, of a live lock).
  if (kernel === 'free' && record.flock) {
    const self = ctx.processes.self();
    return { owner: record, bytes, live: record.host === self.host && record.boot === self.boot && ctx.processes.isAlive(record) };
  }
  // A lock from another host cannot be checked from here: treat it as live (fail closed).
  const live = record.host !== ctx.processes.self().host || ctx.processes.isAlive(record);
  return { owner: record, bytes, live };
}

/**
 * Removes a stale lock file — only if it still holds `bytes`, under a mutex shared by every
 * process taking it over. A dead owner's lock is always removed, never just ignored: were
 * the verdict ever wrong, the owner's next verify() fails and it stops, rather than two
 * processes running on.
 */
export async function removeStaleLock(ctx: LockContext, path: string, bytes: Uint8Array): Promise<void> {
  const mutex = `${path}.takeover`;
  for (;;) {
    if (await ctx.fs.makeExclusiveDir(mutex)) {
      try {
        const again = await ctx.fs.readFile(path);
        if (again !== undefined && sameBytes(again, bytes)) await ctx.fs.remove(path);
      } finally {
        await ctx.fs.removeDir(mutex);
      }
      return;
    }
    // Another process is taking it over; a mutex left by a process that died meanwhile is removed.
    const age = await ctx.fs.modifiedAt(mutex);
    if (age !== undefined && ctx.wallClock() - age > TAKEOVER_MUTEX_STALE_MS) await ctx.fs.removeDir(mutex);
    await ctx.sleep(20);
    const now = await ctx.fs.readFile(path);
    if (now === undefined || !sameBytes(now, bytes)) return;
  }
}

/** "process 123", or where it cannot be checked from here. */
export function describeOwner(owner: LockOwner | undefined): string {
  if (owner === undefined) return 'another process';
  return owner.host !== hostname() ? `process ${owner.pid} on host ${owner.host} (it cannot be checked from here)` : `process ${owner.pid}`;
}

function lockedError(path: string, owner: LockOwner | undefined, what: string, starting: boolean): HailstoneError {
  return new HailstoneError(
    'STATE_LOCKED',
    starting
      ? `${what} is held by ${describeOwner(owner)} (lock file ${path}), which is starting the same node and has not finished: ` +
          'wait for it, or stop it'
      : `${what} is in use by ${describeOwner(owner)} (lock file ${path}). Two processes must never issue ids as the same ` +
          'node and worker: stop the other one, or give this one another node id or worker index',
  );
}

export interface StateLock {
  readonly path: string;
  /**
   * Proves the lock is still held: the name refers to the file this process created, with
   * its content. Returns why not, or undefined while it is. Throws on I/O errors (which
   * prove nothing either way).
   */
  verify(): Promise<string | undefined>;
  /** Removes the lock file if it is still this process's, and drops the kernel lock. */
  release(): Promise<void>;
}

class HeldLock implements StateLock {
  readonly path: string;

  /** `identity`: of the file created, taken before its name appeared; `kernel`: its flock, when one was taken. */
  constructor(private readonly held: { path: string; ctx: LockContext; content: Uint8Array; identity: string; kernel: KernelHeldFile | undefined }) {
    this.path = held.path;
  }

  async verify(): Promise<string | undefined> {
    const now = await this.held.ctx.fs.identity(this.path);
    if (now === undefined) return `its lock file ${this.path} was removed`;
    if (now !== this.held.identity) return `its lock file ${this.path} was replaced by another file`;
    const bytes = await this.held.ctx.fs.readFile(this.path);
    if (bytes === undefined) return `its lock file ${this.path} was removed`;
    if (!sameBytes(bytes, this.held.content)) return `its lock file ${this.path} was rewritten`;
    return undefined;
  }

  async release(): Promise<void> {
    try {
      // Removed only while it is still ours: a lock lost to another process stays theirs.
      if ((await this.verify()) === undefined) await this.held.ctx.fs.remove(this.path);
    } finally {
      await this.held.kernel?.close();
    }
  }
}

export interface AcquireOptions {
  /**
   * How long to keep trying while a live process holds the lock (a lock held only for a
   * moment, like the startup lock). Default 0: refuse at once with STATE_LOCKED.
   */
  waitMs?: number;
}

/** Takes the lock at `path` or throws STATE_LOCKED. Stale locks are taken over. */
export async function acquireLock(ctx: LockContext, path: string, what: string, options: AcquireOptions = {}): Promise<StateLock> {
  const content = encodeRecord({ ...ctx.processes.self(), flock: ctx.kernel !== undefined, token: randomBytes(8).toString('hex') });
  const waitMs = options.waitMs ?? 0;
  const until = ctx.wallClock() + waitMs;
  let last: LockHolder | undefined;
  for (let attempt = 0; attempt < 50 || ctx.wallClock() < until; attempt++) {
    if (ctx.kernel !== undefined) {
      const held = await ctx.kernel.createHeld(path, content);
      if (held !== undefined) return new HeldLock({ path, ctx, content, identity: held.identity, kernel: held });
    } else {
      const identity = await ctx.fs.createExclusive(path, content);
      if (identity !== undefined) return new HeldLock({ path, ctx, content, identity, kernel: undefined });
    }
    const holder = await lockHolder(ctx, path);
    if (holder === undefined) continue; // released meanwhile: try again
    last = holder;
    if (holder.live) {
      if (ctx.wallClock() >= until) throw lockedError(path, holder.owner, what, waitMs > 0);
      await ctx.sleep(20);
      continue;
    }
    // Stale: remove it and try again. (Should two processes both believe they took it, the
    // loser's verify() fails before it uses any reservation: see node.ts.)
    await removeStaleLock(ctx, path, holder.bytes);
  }
  throw lockedError(path, last?.owner, what, waitMs > 0);
}
