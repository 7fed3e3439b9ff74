// The real file system with every fsync (file or directory) made `ms` slower: storage as
// slow as a loaded disk, behind the same StorageFs interface the node uses.

import type { StorageFs } from '../../src/index.js';
import { realStorage } from '../../src/node/storage.js';

/**
 * The real file system, with every fsync (file or directory) taking `ms` longer; `overrun`
 * reports, per fsync, how much longer than `ms` it took in all (the timer and the real
 * fsync: what the machine added).
 */
export function slowStorage(ms: number, overrun: (extraMs: number) => void = () => {}): StorageFs {
  const slowSync = async (sync: () => Promise<void>) => {
    const t = performance.now();
    await new Promise((resolve) => setTimeout(resolve, ms));
    await sync();
    overrun(performance.now() - t - ms);
  };
  return {
    ...realStorage,
    async openForWrite(path) {
      const file = await realStorage.openForWrite(path);
      return { write: (d) => file.write(d), close: () => file.close(), sync: () => slowSync(() => file.sync()) };
    },
    syncDir: (dir) => slowSync(() => realStorage.syncDir(dir)),
  };
}
