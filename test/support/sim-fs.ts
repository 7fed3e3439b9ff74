// A simulated file system with the StorageFs interface the real one implements. It keeps
// what a crash would leave apart from what a running process sees, so tests can crash at
// any step and inject the faults real disks have:
//  - file content survives a crash only as of its last successful fsync; a file never
//    synced survives as a torn prefix (or not at all);
//  - a creation, rename or removal survives only after the directory was fsynced; before
//    that, a crash keeps the old or the new name at random (seeded), as real file systems may;
//  - faults: any operation can fail with an errno; a failed fsync drops the dirty data and
//    the next fsync of that file reports success anyway ("fsyncgate");
//  - crashAtOp: the n-th operation throws CrashError and so does every later one: the
//    process is dead; crash() then turns the disk into what a reboot would find.

import { dirname } from 'node:path';
import type { ProcessProbe, LockOwner } from '../../src/node/lock.js';
import type { StorageFile, StorageFs } from '../../src/node/storage.js';

export class CrashError extends Error {
  constructor() {
    super('simulated crash: the process is dead');
  }
}

export type FsOp =
  | 'mkdir' | 'readFile' | 'list' | 'openForWrite' | 'write' | 'sync' | 'close' | 'createExclusive'
  | 'rename' | 'remove' | 'syncDir' | 'makeExclusiveDir' | 'removeDir' | 'modifiedAt' | 'identity';

/** Returns an errno code to fail the operation with, or undefined to let it run. */
export type FaultHook = (op: FsOp, path: string) => string | undefined;

interface Inode {
  /** Inode number: a new one for every file created. */
  ino: number;
  data: Uint8Array;
  /** Content as of the last successful fsync; undefined if never synced. */
  synced: Uint8Array | undefined;
  mtime: number;
}

function errno(code: string, op: string, path: string): NodeJS.ErrnoException {
  const error = new Error(`${code}: simulated ${op} failure, '${path}'`) as NodeJS.ErrnoException;
  error.code = code;
  return error;
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

export class SimulatedFs implements StorageFs {
  /** What a running process sees. */
  private live = new Map<string, Inode>();
  /** The names a crash would keep: as of each directory's last fsync. */
  private durable = new Map<string, Inode>();
  private dirs = new Map<string, number>();
  private nextIno = 1;
  private opCount = 0;
  crashed = false;
  crashAtOp = Infinity;
  /** The operation the simulated crash interrupted. */
  crashedAt: FsOp | undefined;
  fault: FaultHook = () => undefined;
  readonly log: string[] = [];

  constructor(private readonly random: () => number, private readonly wallClock: () => number = Date.now) {}

  /** Counts an operation; throws when the process is dead or a fault is injected. */
  private enter(op: FsOp, path: string): void {
    if (this.crashed) throw new CrashError();
    if (this.opCount++ === this.crashAtOp) {
      this.crashed = true;
      this.crashedAt = op;
      throw new CrashError();
    }
    this.log.push(`${op} ${path}`);
    const code = this.fault(op, path);
    if (code !== undefined) throw errno(code, op, path);
  }

  get operations(): number {
    return this.opCount;
  }

  /** What the disk holds after the machine comes back. Clears the crash so a new process can run. */
  crash(): void {
    const names = new Set([...this.live.keys(), ...this.durable.keys()]);
    const next = new Map<string, Inode>();
    for (const name of names) {
      const before = this.durable.get(name);
      const after = this.live.get(name);
      // A name change not yet made durable by a directory fsync may or may not have reached the disk.
      const kept = before === after ? after : this.random() < 0.5 ? before : after;
      if (kept === undefined) continue;
      let content = kept.synced;
      if (content === undefined) {
        // Never synced: lost entirely, or a torn prefix of what was written.
        if (this.random() < 0.5) continue;
        content = kept.data.subarray(0, Math.floor(this.random() * (kept.data.length + 1)));
      }
      next.set(name, { ino: kept.ino, data: content.slice(), synced: content.slice(), mtime: kept.mtime });
    }
    this.live = next;
    this.durable = new Map(next);
    this.crashed = false;
    this.crashAtOp = Infinity;
    this.fault = () => undefined;
  }

  /** Corrupts a file in place (tests of damaged state). */
  overwrite(path: string, data: Uint8Array): void {
    const inode = { ino: this.nextIno++, data: data.slice(), synced: data.slice(), mtime: this.wallClock() };
    this.live.set(path, inode);
    this.durable.set(path, inode);
  }

  /** Deletes a name at once, as another process (a tmp cleaner) would. */
  unlink(path: string): void {
    this.live.delete(path);
  }

  /** `rm -rf dir && mkdir dir` by another process: every name under it gone, a new directory. */
  replaceDir(dir: string): void {
    for (const name of [...this.live.keys()]) if (name.startsWith(`${dir}/`)) this.live.delete(name);
    this.dirs.set(dir, this.nextIno++);
  }

  /**
   * `mv dir dir.old; mkdir dir; ln dir.old/* dir/`: a new directory under the same name whose
   * entries are hard links to the old files — same inodes, same bytes. Only the directory's
   * own identity has changed.
   */
  swapDirKeepingLinks(dir: string): void {
    this.dirs.set(dir, this.nextIno++);
  }

  peek(path: string): Uint8Array | undefined {
    return this.live.get(path)?.data;
  }

  /** What the file would hold after a crash right now, if its name is durable and its content synced. */
  durableContent(path: string): Uint8Array | undefined {
    return this.durable.get(path)?.synced;
  }

  async mkdir(dir: string): Promise<void> {
    this.enter('mkdir', dir);
    if (!this.dirs.has(dir)) this.dirs.set(dir, this.nextIno++);
  }

  async readFile(path: string): Promise<Uint8Array | undefined> {
    this.enter('readFile', path);
    return this.live.get(path)?.data.slice();
  }

  async list(dir: string): Promise<string[]> {
    this.enter('list', dir);
    return [...this.live.keys()].filter((p) => dirname(p) === dir).map((p) => p.slice(dir.length + 1));
  }

  async openForWrite(path: string): Promise<StorageFile> {
    this.enter('openForWrite', path);
    const inode: Inode = { ino: this.nextIno++, data: new Uint8Array(0), synced: undefined, mtime: this.wallClock() };
    this.live.set(path, inode);
    let open = true;
    const check = (op: FsOp) => {
      this.enter(op, path);
      if (!open) throw errno('EBADF', op, path);
    };
    return {
      write: async (data) => {
        check('write');
        inode.data = concat(inode.data, data);
        inode.mtime = this.wallClock();
      },
      sync: async () => {
        try {
          check('sync');
        } catch (error) {
          if ((error as NodeJS.ErrnoException).code === 'EIO') {
            // The kernel drops the dirty pages; the next fsync has nothing to report.
            inode.data = inode.synced?.slice() ?? new Uint8Array(0);
          }
          throw error;
        }
        inode.synced = inode.data.slice();
      },
      close: async () => {
        check('close');
        open = false;
      },
    };
  }

  async createExclusive(path: string, data: Uint8Array): Promise<string | undefined> {
    this.enter('createExclusive', path);
    if (this.live.has(path)) return undefined;
    const ino = this.nextIno++;
    this.live.set(path, { ino, data: data.slice(), synced: undefined, mtime: this.wallClock() });
    return `sim:${ino}`;
  }

  async identity(path: string): Promise<string | undefined> {
    this.enter('identity', path);
    const inode = this.live.get(path);
    if (inode !== undefined) return `sim:${inode.ino}`;
    const dir = this.dirs.get(path);
    return dir === undefined ? undefined : `sim:${dir}`;
  }

  async rename(from: string, to: string): Promise<void> {
    this.enter('rename', `${from} -> ${to}`);
    const inode = this.live.get(from);
    if (inode === undefined) throw errno('ENOENT', 'rename', from);
    this.live.delete(from);
    this.live.set(to, inode);
  }

  async remove(path: string): Promise<void> {
    this.enter('remove', path);
    this.live.delete(path);
  }

  async syncDir(dir: string): Promise<void> {
    this.enter('syncDir', dir);
    for (const name of new Set([...this.live.keys(), ...this.durable.keys()])) {
      if (dirname(name) !== dir) continue;
      const inode = this.live.get(name);
      if (inode === undefined) this.durable.delete(name);
      else this.durable.set(name, inode);
    }
  }

  async makeExclusiveDir(path: string): Promise<boolean> {
    this.enter('makeExclusiveDir', path);
    if (this.dirs.has(path)) return false;
    this.dirs.set(path, this.nextIno++);
    return true;
  }

  async removeDir(path: string): Promise<void> {
    this.enter('removeDir', path);
    this.dirs.delete(path);
  }

  async modifiedAt(path: string): Promise<number | undefined> {
    this.enter('modifiedAt', path);
    return this.live.get(path)?.mtime;
  }
}

/** Simulated processes: each incarnation of a node is a "process" that can be killed. */
export class SimProcesses {
  private readonly alive = new Set<number>();
  private nextPid = 1000;

  /** A new live process and the ProcessProbe it sees. */
  spawn(): { pid: number; probe: ProcessProbe } {
    const pid = this.nextPid++;
    this.alive.add(pid);
    const owner: LockOwner = { host: 'sim', pid, start: '1', boot: 'sim-boot' };
    return { pid, probe: { self: () => owner, isAlive: (o) => o.host === 'sim' && this.alive.has(o.pid) } };
  }

  kill(pid: number): void {
    this.alive.delete(pid);
  }
}

/**
 * A StorageFs over another that awaits `before(op, path)` ahead of every operation: a test
 * can pause one process between any two of its disk operations and run another meanwhile.
 */
export function gatedFs(fs: StorageFs, before: (op: FsOp, path: string) => Promise<void>): StorageFs {
  return {
    mkdir: async (dir) => (await before('mkdir', dir), fs.mkdir(dir)),
    readFile: async (path) => (await before('readFile', path), fs.readFile(path)),
    list: async (dir) => (await before('list', dir), fs.list(dir)),
    openForWrite: async (path) => {
      await before('openForWrite', path);
      const file = await fs.openForWrite(path);
      return {
        write: async (data) => (await before('write', path), file.write(data)),
        sync: async () => (await before('sync', path), file.sync()),
        close: async () => (await before('close', path), file.close()),
      };
    },
    createExclusive: async (path, data) => (await before('createExclusive', path), fs.createExclusive(path, data)),
    identity: async (path) => (await before('identity', path), fs.identity(path)),
    rename: async (from, to) => (await before('rename', `${from} -> ${to}`), fs.rename(from, to)),
    remove: async (path) => (await before('remove', path), fs.remove(path)),
    syncDir: async (dir) => (await before('syncDir', dir), fs.syncDir(dir)),
    makeExclusiveDir: async (path) => (await before('makeExclusiveDir', path), fs.makeExclusiveDir(path)),
    removeDir: async (path) => (await before('removeDir', path), fs.removeDir(path)),
    modifiedAt: async (path) => (await before('modifiedAt', path), fs.modifiedAt(path)),
  };
}
