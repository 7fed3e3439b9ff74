// The reservation in a state file on local disk, guarded by lock files.
//
// Files in the state directory, for node N as worker i of W:
//   node-N.wi-W.state        the 64-byte record holding R
//   node-N.wi-W.state.lock   held by the one process running that stripe
//   node-N.startup.lock      held for a moment by a process starting any stripe of node N
//
// Startup, under the startup lock: take the stripe's lock; refuse while a process of node
// N runs under another worker count (its stripes overlap ours), removing the locks of
// dead ones; remove temp files a crash left; read our state and every other worker
// count's (our floor). The startup lock makes concurrent starts take turns, so two
// configurations started at once cannot both pass.
//
// Every save proves the lock three times: before writing, between the temp file's fsync
// and the rename, and after the directory fsync — and R counts only after the last. Why
// this makes a lost lock safe: a process that takes the lock over (after it was deleted,
// or judged stale) reads the state files only after it holds the lock, and first removes
// our temp files. Any R we used was renamed into place before a proof that preceded the
// takeover, so the newcomer reads it. A rename of ours that could land later is either of
// a temp file the newcomer removed (the rename fails) or was never made (the proof before
// it failed). The directory is checked too: a state dir removed and recreated under us is
// another directory.

import { join } from 'node:path';
import { HailstoneError } from '../errors.js';
import type { Layout, WorkerStripe } from '../layout.js';
import { isTempFileOf, writeDurably } from './durable-write.js';
import { type LockContext, type StateLock, acquireLock, describeOwner, lockHolder, removeStaleLock, sameBytes } from './lock.js';
import { RecordError, type StateRecord, decodeRecord, encodeRecord, recordLayoutText, sameLayout } from './state-record.js';
import { OwnershipLostError, type ReservationStore, type StoredFloor } from './store.js';

export function stateFileName(nodeId: number, worker: WorkerStripe): string {
  return `node-${nodeId}.w${worker.index}-${worker.count}.state`;
}

const STATE_FILE_PATTERN = /^node-(\d+)\.w(\d+)-(\d+)\.state$/;
const LOCK_FILE_PATTERN = /^node-(\d+)\.w(\d+)-(\d+)\.state\.lock$/;
/** How long a start waits for another start of the same node id to finish its checks. */
const STARTUP_LOCK_WAIT_MS = 15_000;

export interface FileStoreOptions {
  dir: string;
  layout: Layout;
  nodeId: number;
  worker: WorkerStripe;
  /** Start over from an unreadable or mismatched own state file (logged through onReset). */
  resetState: boolean;
  onReset: (reason: string) => void;
  lockContext: LockContext;
}

function corrupt(path: string, why: string): HailstoneError {
  return new HailstoneError(
    'STATE_CORRUPT',
    `state file ${path} cannot be trusted: ${why}. hailstone will not guess where this node left off. ` +
      'Restore the file, or — only if no other process uses this node id — start with resetState ' +
      '(--reset-state), which treats this as a first start',
  );
}

export function recordFor(layout: Layout, nodeId: number, worker: WorkerStripe, reservedUntil: number, writtenAt: number): StateRecord {
  return {
    timeBits: layout.timeBits,
    nodeBits: layout.nodeBits,
    sequenceBits: layout.sequenceBits,
    tickMs: layout.tickMs,
    epoch: layout.epoch,
    nodeId,
    workerIndex: worker.index,
    workerCount: worker.count,
    reservedUntil,
    writtenAt,
  };
}

export class FileStore implements ReservationStore {
  readonly where: string;
  /** Also says which lock: the kernel's flock (with its lock file) or the lock file alone. */
  readonly ownership: string;
  readonly afterLoss: string;
  readonly stateFile: string;
  private readonly ctx: LockContext;
  private lock: StateLock | undefined;
  private dirIdentity: string | undefined;
  /**
   * What the state file may hold now: what this process last wrote (or found at startup),
   * and during a write also the record being written. Anything else means another process
   * wrote it — a lock file moved away and put back while this one was paused, say.
   */
  private expected: (Uint8Array | undefined)[] = [];

  constructor(private readonly options: FileStoreOptions) {
    this.ctx = options.lockContext;
    this.stateFile = join(options.dir, stateFileName(options.nodeId, options.worker));
    this.where = `state file ${this.stateFile}`;
    this.ownership = this.ctx.kernel === undefined ? 'state lock (lock file)' : 'state lock (flock)';
    const { nodeId, worker } = options;
    this.afterLoss =
      'it will not take the node id back by itself: ' +
      `make sure no other process runs node ${nodeId} (worker ${worker.index} of ${worker.count}) on ${this.where}, ` +
      'find what removed the lock, then restart this process';
  }

  private get what(): string {
    const { nodeId, worker, dir } = this.options;
    return `node ${nodeId} (worker ${worker.index} of ${worker.count}) in ${dir}`;
  }

  async open(): Promise<StoredFloor> {
    try {
      return await this.openDir();
    } catch (error) {
      throw unusableDir(this.options.dir, error);
    }
  }

  private async openDir(): Promise<StoredFloor> {
    const { dir, nodeId } = this.options;
    const fs = this.ctx.fs;
    await fs.mkdir(dir);
    this.dirIdentity = await fs.identity(dir);
    const startup = await acquireLock(this.ctx, join(dir, `node-${nodeId}.startup.lock`), `the startup of node ${nodeId} in ${dir}`, {
      waitMs: STARTUP_LOCK_WAIT_MS,
    });
    try {
      this.lock = await acquireLock(this.ctx, `${this.stateFile}.lock`, this.what);
      try {
        await this.excludeOtherConfigurations();
        // Temp files left by a crash mid-write are never renamed: remove them. (A process
        // that lost this lock may still try to rename one: see the top of this file.)
        const target = stateFileName(nodeId, this.options.worker);
        for (const name of await fs.list(dir)) if (isTempFileOf(name, target)) await fs.remove(join(dir, name));
        const stored = await fs.readFile(this.stateFile);
        this.expected = [stored];
        const own = this.readOwnState(stored);
        const others = await this.otherConfigurationsFloor();
        const floor = Math.max(own?.reservedUntil ?? -Infinity, others);
        return { floor: Number.isFinite(floor) ? floor : undefined, firstStart: own === undefined };
      } catch (error) {
        await this.lock.release().catch(() => undefined);
        this.lock = undefined;
        throw error;
      }
    } finally {
      await startup.release().catch(() => undefined);
    }
  }

  async save(reservedUntil: number, writtenAt: number): Promise<void> {
    const { layout, nodeId, worker } = this.options;
    await this.prove();
    const record = encodeRecord(recordFor(layout, nodeId, worker, reservedUntil, writtenAt));
    this.expected.push(record);
    try {
      await writeDurably(this.ctx.fs, this.stateFile, record, () => this.prove());
    } catch (error) {
      // A write that failed because the ground moved (our temp file removed by a process that
      // took the lock over, the directory gone) is reported as what it is.
      if (!(error instanceof OwnershipLostError)) await this.prove();
      throw error;
    }
    await this.prove();
    this.expected = [record];
  }

  async close(): Promise<void> {
    const lock = this.lock;
    this.lock = undefined;
    await lock?.release();
  }

  /** Checks, between renewals too, that this process still owns the node id here. */
  async verify(): Promise<void> {
    await this.prove();
  }

  /**
   * Throws OwnershipLostError unless the lock file is still ours, the directory the one we
   * opened, and the state file holds what this process wrote.
   */
  private async prove(): Promise<void> {
    if (this.lock === undefined) throw new OwnershipLostError(`${this.what} is not locked`);
    const dir = await this.ctx.fs.identity(this.options.dir);
    if (dir !== this.dirIdentity) throw new OwnershipLostError(`the state directory ${this.options.dir} was removed or replaced`);
    const lost = await this.lock.verify();
    if (lost !== undefined) throw new OwnershipLostError(lost);
    const now = await this.ctx.fs.readFile(this.stateFile);
    if (!this.expected.some((e) => (e === undefined ? now === undefined : now !== undefined && sameBytes(e, now)))) {
      throw new OwnershipLostError(`the state file ${this.stateFile} ${now === undefined ? 'was removed' : 'was written by another process'}`);
    }
  }

  /** Refuses while a process of this node id runs under another worker count; removes the locks of dead ones. */
  private async excludeOtherConfigurations(): Promise<void> {
    const { dir, nodeId, worker } = this.options;
    for (const name of await this.ctx.fs.list(dir)) {
      const m = LOCK_FILE_PATTERN.exec(name);
      if (m === null || Number(m[1]) !== nodeId || Number(m[3]) === worker.count) continue;
      const path = join(dir, name);
      const holder = await lockHolder(this.ctx, path);
      if (holder === undefined) continue;
      if (holder.live) {
        throw new HailstoneError(
          'STATE_LOCKED',
          `node ${nodeId} is running as worker ${m[2]} of ${m[3]} in ${dir} (${describeOwner(holder.owner)}): ` +
            `stop it before starting node ${nodeId} with ${worker.count} worker(s) — their stripes of the sequence overlap`,
        );
      }
      await removeStaleLock(this.ctx, path, holder.bytes);
    }
  }

  /** Our own state file's record, or undefined when there is none (or resetState set it aside). */
  private readOwnState(bytes: Uint8Array | undefined): StateRecord | undefined {
    const { layout, nodeId, worker } = this.options;
    const path = this.stateFile;
    if (bytes === undefined) return undefined;
    try {
      let record: StateRecord;
      try {
        record = decodeRecord(bytes);
      } catch (error) {
        if (error instanceof RecordError) throw corrupt(path, error.message);
        throw error;
      }
      if (record.nodeId !== nodeId) throw corrupt(path, `it belongs to node ${record.nodeId}, not node ${nodeId}`);
      if (record.workerIndex !== worker.index || record.workerCount !== worker.count) {
        throw corrupt(path, `it belongs to worker ${record.workerIndex} of ${record.workerCount}, not ${worker.index} of ${worker.count}`);
      }
      if (!sameLayout(record, layout)) {
        throw corrupt(path, `it was written with layout ${recordLayoutText(record)}, this node uses ${layout.fingerprint}`);
      }
      return record;
    } catch (error) {
      if (!(error instanceof HailstoneError) || !this.options.resetState) throw error;
      this.options.onReset(error.message);
      return undefined;
    }
  }

  /** The latest reservation of this node id under other worker counts: their stripes overlap ours. */
  private async otherConfigurationsFloor(): Promise<number> {
    const { dir, nodeId, worker } = this.options;
    let floor = -Infinity;
    for (const name of await this.ctx.fs.list(dir)) {
      const m = STATE_FILE_PATTERN.exec(name);
      if (m === null || Number(m[1]) !== nodeId || Number(m[3]) === worker.count) continue;
      const path = join(dir, name);
      const bytes = await this.ctx.fs.readFile(path);
      if (bytes === undefined) continue;
      try {
        floor = Math.max(floor, decodeRecord(bytes).reservedUntil);
      } catch (error) {
        if (!(error instanceof RecordError)) throw error;
        throw corrupt(path, `${error.message} (it is left from running node ${nodeId} with ${m[3]} workers; delete it only if you know no id was issued past now)`);
      }
    }
    return floor;
  }
}

const ADVICE: Record<string, string> = {
  EACCES: 'the user running hailstone may not write there: give it the directory (chown) or choose another --state-dir',
  EPERM: 'the user running hailstone may not write there: give it the directory (chown) or choose another --state-dir',
  EROFS: 'the file system is read-only: choose a --state-dir on writable, durable storage',
  EEXIST: 'a file stands where a directory must be: choose another --state-dir',
  ENOTDIR: 'a file stands where a directory must be: choose another --state-dir',
  EISDIR: 'a directory stands where a state or lock file must be: remove it',
  ENOENT: 'the directory cannot be created or used there: choose a --state-dir on a real, local file system (not /proc or /sys)',
  ENOSPC: 'the file system is full: free space or choose another --state-dir',
  EDQUOT: 'the disk quota is used up: free space or choose another --state-dir',
};

/** An error of the system (EACCES, EROFS…) while opening the state dir, as a one-line STATE_DIR_UNUSABLE. */
function unusableDir(dir: string, error: unknown): unknown {
  const errno = error as NodeJS.ErrnoException;
  if (error instanceof HailstoneError || typeof errno?.code !== 'string' || !(errno.code in ADVICE)) return error;
  const what = errno.path === undefined ? ` (a state or lock file in ${dir})` : ` (${errno.syscall ?? "using"} ${errno.path})`;
  return new HailstoneError('STATE_DIR_UNUSABLE', `state dir ${dir} cannot be used: ${errno.code}${what}: ${ADVICE[errno.code]}`, { cause: error });
}
