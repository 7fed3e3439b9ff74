// The file-system operations durable state needs, behind one small interface so tests
// can inject faults (EIO on fsync, ENOSPC, torn writes, writes lost at a crash) into
// exactly the calls the real implementation makes.

import * as fsp from 'node:fs/promises';
import { dirname } from 'node:path';

export interface StorageFile {
  write(data: Uint8Array): Promise<void>;
  /** fsync(2). After it fails, the file's data must be treated as lost: never retry it. */
  sync(): Promise<void>;
  close(): Promise<void>;
}

export interface StorageFs {
  /** Creates the directory and its parents if missing. */
  mkdir(dir: string): Promise<void>;
  /** The whole file, or undefined when it does not exist. */
  readFile(path: string): Promise<Uint8Array | undefined>;
  /** Names in a directory. */
  list(dir: string): Promise<string[]>;
  /** Opens for writing, creating or truncating. */
  openForWrite(path: string): Promise<StorageFile>;
  /**
   * Creates a file that must not exist yet, with the given content, and returns its
   * identity; undefined if the name exists. Atomic: the name never appears without its
   * whole content.
   */
  createExclusive(path: string, data: Uint8Array): Promise<string | undefined>;
  /**
   * What the name refers to now ("dev:ino" for a real file or directory), or undefined when
   * it does not exist. The same identity means the same file: a name deleted and created
   * again, or a directory replaced by another, gets a new one.
   */
  identity(path: string): Promise<string | undefined>;
  rename(from: string, to: string): Promise<void>;
  /** Removes a file; no error when it is already gone. */
  remove(path: string): Promise<void>;
  /** fsync(2) on the directory, making renames and creations in it durable. */
  syncDir(dir: string): Promise<void>;
  /** Creates a directory that must not exist yet; false if it exists. Used as a mutex. */
  makeExclusiveDir(path: string): Promise<boolean>;
  removeDir(path: string): Promise<void>;
  /** Modification time in ms, or undefined when the path does not exist. */
  modifiedAt(path: string): Promise<number | undefined>;
}

/** A file's identity: its device and inode numbers (bigints: inode numbers may pass 2^53). */
export function identityOf(stat: { dev: bigint; ino: bigint }): string {
  return `${stat.dev}:${stat.ino}`;
}

export function isCode(error: unknown, code: string): boolean {
  return (error as NodeJS.ErrnoException | undefined)?.code === code;
}

class RealFile implements StorageFile {
  constructor(private readonly handle: fsp.FileHandle) {}

  async write(data: Uint8Array): Promise<void> {
    let done = 0;
    while (done < data.length) {
      const { bytesWritten } = await this.handle.write(data, done, data.length - done);
      done += bytesWritten;
    }
  }

  sync(): Promise<void> {
    return this.handle.sync();
  }

  close(): Promise<void> {
    return this.handle.close();
  }
}

/** The real file system (node:fs/promises). */
export const realStorage: StorageFs = {
  async mkdir(dir) {
    await makeDirectory(dir, 0);
  },
  async readFile(path) {
    try {
      return await fsp.readFile(path);
    } catch (error) {
      if (isCode(error, 'ENOENT')) return undefined;
      throw error;
    }
  },
  list(dir) {
    return fsp.readdir(dir);
  },
  async openForWrite(path) {
    return new RealFile(await fsp.open(path, 'w', 0o644));
  },
  async createExclusive(path, data) {
    // Write the content under a private name, then link it into place: link(2) fails with
    // EEXIST atomically, and the name appears with the whole content or not at all.
    const temp = `${path}.${process.pid}.${Date.now()}.${Math.random().toString(36).slice(2)}.new`;
    await fsp.writeFile(temp, data, { mode: 0o644, flag: 'wx' });
    try {
      // The identity of the file we wrote, taken before its name is public.
      const identity = identityOf(await fsp.stat(temp, { bigint: true }));
      await fsp.link(temp, path);
      return identity;
    } catch (error) {
      if (isCode(error, 'EEXIST')) return undefined;
      throw error;
    } finally {
      await fsp.rm(temp, { force: true });
    }
  },
  async identity(path) {
    try {
      return identityOf(await fsp.stat(path, { bigint: true }));
    } catch (error) {
      if (isCode(error, 'ENOENT') || isCode(error, 'ENOTDIR')) return undefined;
      throw error;
    }
  },
  rename(from, to) {
    return fsp.rename(from, to);
  },
  async remove(path) {
    await fsp.rm(path, { force: true });
  },
  async syncDir(dir) {
    const handle = await fsp.open(dir, 'r');
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
  },
  async makeExclusiveDir(path) {
    try {
      await fsp.mkdir(path);
      return true;
    } catch (error) {
      if (isCode(error, 'EEXIST')) return false;
      throw error;
    }
  },
  async removeDir(path) {
    await fsp.rm(path, { recursive: true, force: true });
  },
  async modifiedAt(path) {
    try {
      return (await fsp.stat(path)).mtimeMs;
    } catch (error) {
      if (isCode(error, 'ENOENT')) return undefined;
      throw error;
    }
  },
};

/**
 * mkdir -p, by hand: Node's recursive mkdir spins forever at 100% CPU where mkdir answers
 * ENOENT although the parent exists (under /proc, say). Here that is an error.
 */
async function makeDirectory(dir: string, depth: number): Promise<void> {
  try {
    await fsp.mkdir(dir);
  } catch (error) {
    if (isCode(error, 'EEXIST')) {
      if (!(await fsp.stat(dir)).isDirectory()) throw Object.assign(new Error(`EEXIST: ${dir} exists and is not a directory`), { code: 'EEXIST', path: dir });
      return;
    }
    const parent = dirname(dir);
    if (!isCode(error, 'ENOENT') || parent === dir || depth > 64) throw error;
    await makeDirectory(parent, depth + 1);
    await fsp.mkdir(dir).catch((again: unknown) => {
      if (!isCode(again, 'EEXIST')) throw again;
    });
  }
}
