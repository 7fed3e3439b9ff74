// openNode(): a node over a state directory — the file store wired with the real file
// system, process table and kernel locks (or what a test injects) — started by the rules
// every store shares (startup.ts).

import { InvalidArgumentError, describe } from '../errors.js';
import { FileStore } from './file-store.js';
import { type KernelLocks, kernelLockAvailability } from './kernel-lock.js';
import { realProcesses } from './lock.js';
import type { HailstoneNode } from './node.js';
import { type CheckedRules, type NodeOptions, checkNodeRules } from './options.js';
import { startNode } from './startup.js';
import { realStorage } from './storage.js';

/** Opens a crash-safe node with its reservation in a state directory. Resolves once the first reservation is durable. */
export async function openNode(options: NodeOptions): Promise<HailstoneNode> {
  const rules = checkNodeRules(options);
  if (typeof options.stateDir !== 'string' || options.stateDir === '') {
    throw new InvalidArgumentError('stateDir', `must be a directory path, got ${describe(options.stateDir)}`);
  }
  const store = fileStoreOf(options, rules);
  return startNode(store, options, rules, store.stateFile);
}

/** The state-dir store of a node (also the extra floor of a fleet node that has a state dir). */
export function fileStoreOf(options: NodeOptions, rules: CheckedRules): FileStore {
  const fs = options.fs ?? realStorage;
  const kernel =
    options.kernelLocks === false
      ? undefined
      : (options.kernelLocks ?? (fs === realStorage ? kernelLockOrUndefined() : undefined));
  return new FileStore({
    dir: options.stateDir,
    layout: rules.layout,
    nodeId: rules.nodeId,
    worker: rules.worker,
    resetState: options.resetState ?? false,
    onReset: (reason) => rules.logger.warn({ nodeId: rules.nodeId, reason }, 'resetState: ignoring the state file; starting as a first start'),
    lockContext: { fs, processes: options.processes ?? realProcesses, kernel, sleep: rules.sleep, wallClock: rules.wallClock },
  });
}

function kernelLockOrUndefined(): KernelLocks | undefined {
  const availability = kernelLockAvailability();
  return availability.available ? availability.locks : undefined;
}
