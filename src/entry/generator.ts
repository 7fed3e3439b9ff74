// hailstone/generator: ids made in this process — the generator, layouts and the codec.
// Nothing here opens a socket or a file (beyond the WebAssembly module) or loads etcd:
// the lightest way to use hailstone.

export { createGenerator, DEFAULT_MAX_LEAD_MS } from '../generator.js';
export type { Backend, Generator, GeneratorCounters, GeneratorOptions } from '../generator.js';
export { defineLayout, describeLayout, workerStripe, DEFAULT_LAYOUT, DEFAULT_EPOCH } from '../layout.js';
export type { Layout, LayoutOptions, WorkerOptions, WorkerStripe } from '../layout.js';
export { compose, decode, parseId, readId, readIds } from '../codec.js';
export type { DecodedId, DecodeOptions, IdFields } from '../codec.js';
export { HailstoneError, InvalidArgumentError } from '../errors.js';
export type { HailstoneErrorCode } from '../errors.js';
