// hailstone: 64-bit, time-ordered, globally unique ids.

export { createGenerator, DEFAULT_MAX_LEAD_MS } from './generator.js';
export type { Backend, Generator, GeneratorOptions } from './generator.js';
export { defineLayout, describeLayout, workerStripe, DEFAULT_LAYOUT, DEFAULT_EPOCH } from './layout.js';
export type { Layout, LayoutOptions, WorkerOptions, WorkerStripe } from './layout.js';
export { compose, decode, parseId, readId, readIds } from './codec.js';
export type { DecodedId, DecodeOptions, IdFields } from './codec.js';
export { HailstoneError, InvalidArgumentError } from './errors.js';
export type { HailstoneErrorCode } from './errors.js';
export { openNode, stderrLogger, stateFileName, DEFAULT_RESERVATION_MS } from './node/node.js';
export type { HailstoneNode, NodeOptions, NodeStatus, NodeLogger } from './node/node.js';
export type { StorageFs, StorageFile } from './node/storage.js';
export type { ProcessProbe, LockOwner } from './node/lock.js';
