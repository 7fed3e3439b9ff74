// The kernel's advisory lock (flock) on lock files, through the small native addon
// native/lock.c. Where it loads, a lock file is created already flocked and its owner
// keeps the flock for its lifetime; the kernel drops it when the owner dies, so whether
// the owner lives is known exactly — across PID namespaces and whatever pid the next
// process gets. Where it does not load, hailstone falls back to its portable lock (the
// owner's pid, process start time and boot id recorded in the file).

import * as fsp from 'node:fs/promises';
import { createRequire } from 'node:module';
import { findAddon, missingAddonReason } from '../native-addons.js';
import { identityOf, isCode } from './storage.js';

interface LockAddon {
  tryLockExclusive(fd: number): boolean;
}

/** A lock file this process created and holds the flock of. */
export interface KernelHeldFile {
  /** The file's identity ("dev:ino") at creation. */
  readonly identity: string;
  /** Drops the flock (closes the file). */
  close(): Promise<void>;
}

export interface KernelLocks {
  /**
   * Creates `path` holding `data` if it does not exist — atomically, and flocked from before
   * its name appears, so nobody ever sees it unlocked. Undefined when `path` exists.
   */
  createHeld(path: string, data: Uint8Array): Promise<KernelHeldFile | undefined>;
  /** Whether some open file holds the flock of `path` right now; undefined when `path` does not exist. */
  probe(path: string): Promise<'held' | 'free' | undefined>;
}

function kernelLocksOver(addon: LockAddon): KernelLocks {
  return {
    async createHeld(path, data) {
      const temp = `${path}.${process.pid}.${Date.now()}.${Math.random().toString(36).slice(2)}.new`;
      const handle = await fsp.open(temp, 'wx', 0o644);
      let linked = false;
      try {
        if (!addon.tryLockExclusive(handle.fd)) throw new Error(`flock on a new private file ${temp} was refused`);
        await handle.writeFile(data);
        const identity = identityOf(await handle.stat({ bigint: true }));
        try {
          await fsp.link(temp, path);
        } catch (error) {
          if (isCode(error, 'EEXIST')) return undefined;
          throw error;
        }
        linked = true;
        return { identity, close: () => handle.close() };
      } finally {
        await fsp.rm(temp, { force: true });
        if (!linked) await handle.close();
      }
    },
    async probe(path) {
      let handle: fsp.FileHandle;
      try {
        handle = await fsp.open(path, 'r');
      } catch (error) {
        if (isCode(error, 'ENOENT')) return undefined;
        throw error;
      }
      try {
        return addon.tryLockExclusive(handle.fd) ? 'free' : 'held';
      } finally {
        await handle.close();
      }
    },
  };
}

export type KernelLockAvailability = { available: true; locks: KernelLocks; path: string } | { available: false; reason: string };

let cached: KernelLockAvailability | undefined;

/** The kernel lock where its addon loads (HAILSTONE_LOCK_ADDON may point elsewhere), and otherwise why not. */
export function kernelLockAvailability(): KernelLockAvailability {
  if (cached !== undefined) return cached;
  const path = findAddon('hailstone_lock.node', 'HAILSTONE_LOCK_ADDON');
  if (path === undefined) return (cached = { available: false, reason: missingAddonReason('hailstone_lock.node') });
  try {
    const addon = createRequire(import.meta.url)(path) as LockAddon;
    if (typeof addon.tryLockExclusive !== 'function') return (cached = { available: false, reason: `${path} is not hailstone's lock addon` });
    return (cached = { available: true, locks: kernelLocksOver(addon), path });
  } catch (error) {
    return (cached = { available: false, reason: `${path} did not load: ${(error as Error).message.split('\n')[0]}` });
  }
}
