// Durable replacement of a small file: write a fresh temp file in the same directory,
// fsync it, rename it over the target, fsync the directory. Only when every step has
// succeeded is the new content durable. A failed step abandons the temp file: its
// descriptor is never fsynced again (after a failed fsync Linux may have dropped the
// data and report success next time), and the next attempt starts from a new file.

import { dirname } from 'node:path';
import type { StorageFs } from './storage.js';

let tempCounter = 0;

/** A temp file name next to `path`, unique within this process and across processes. */
export function tempPathFor(path: string): string {
  tempCounter = (tempCounter + 1) % 1_000_000_000;
  return `${path}.${process.pid}.${tempCounter}.tmp`;
}

/** Whether `name` is a temp file tempPathFor named for the file `target` of the same directory. */
export function isTempFileOf(name: string, target: string): boolean {
  return name.startsWith(`${target}.`) && name.endsWith('.tmp');
}

/**
 * Replaces `path` with `data` durably. `beforeRename` runs once the temp file is on disk
 * and before it takes the name; if it throws, the temp file is removed and the target is
 * left as it was.
 */
export async function writeDurably(fs: StorageFs, path: string, data: Uint8Array, beforeRename?: () => Promise<void>): Promise<void> {
  const temp = tempPathFor(path);
  try {
    const file = await fs.openForWrite(temp);
    try {
      await file.write(data);
      await file.sync();
    } finally {
      await file.close();
    }
    await beforeRename?.();
    await fs.rename(temp, path);
  } catch (error) {
    await fs.remove(temp).catch(() => undefined);
    throw error;
  }
  await fs.syncDir(dirname(path));
}
