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
export { serve, parseAllowList, DEFAULT_HOST, DEFAULT_PORT } from './server/server.js';
export type { Server, ServeOptions, ServerStats } from './server/server.js';
export type { Transport, DatagramSource, DatagramHandler, TransportName, TransportStats } from './server/transport.js';
export { DgramTransport } from './server/dgram-transport.js';
export { NativeTransport } from './server/native-transport.js';
export type { NativeTransportOptions } from './server/native-transport.js';
export { nativeAvailability } from './server/native-addon.js';
export type { NativeAvailability } from './server/native-addon.js';
export { createTransport, resolveTransport } from './server/select-transport.js';
export type { TransportChoice } from './server/select-transport.js';
export { createClient } from './client/client.js';
export type { Client, ClientOptions, ClientStats, NodeIdConflict } from './client/client.js';
export type { PoolOptions, PoolStats } from './client/pool.js';
export { parseKey } from './protocol/auth.js';
export { MAX_IDS_PER_REQUEST } from './protocol/wire.js';
