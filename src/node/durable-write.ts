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

export async function writeDurably(fs: StorageFs, path: string, data: Uint8Array): Promise<void> {
  const temp = tempPathFor(path);
  try {
    const file = await fs.openForWrite(temp);
    try {
      await file.write(data);
      await file.sync();
    } finally {
      await file.close();
    }
    await fs.rename(temp, path);
  } catch (error) {
    await fs.remove(temp).catch(() => undefined);
    throw error;
  }
  await fs.syncDir(dirname(path));
}
