// hailstone/client: asking hailstone servers for ids over UDP, and reading what comes back.
// Fleet discovery (etcd) is loaded only by a client given `etcd`.

export { createClient } from '../create-client.js';
export type { ClientOptions } from '../create-client.js';
export type { Client, ClientStats, NodeIdConflict } from '../client/client.js';
export type { PoolOptions, PoolStats } from '../client/pool.js';
export type { EtcdOptions } from '../fleet/etcd.js';
export { parseKey, readKeyFile, MIN_KEY_BYTES } from '../protocol/auth.js';
export { MAX_IDS_PER_REQUEST } from '../protocol/wire.js';
export { compose, decode, parseId, readId, readIds } from '../codec.js';
export type { DecodedId, DecodeOptions, IdFields } from '../codec.js';
export { defineLayout, DEFAULT_LAYOUT, DEFAULT_EPOCH } from '../layout.js';
export type { Layout, LayoutOptions } from '../layout.js';
export { HailstoneError, InvalidArgumentError } from '../errors.js';
export type { HailstoneErrorCode } from '../errors.js';
