// hailstone: 64-bit, time-ordered, globally unique ids.
//
// Everything, from one import. Programs that need one part can import it alone:
// 'hailstone/generator' (no sockets, no files, no etcd), 'hailstone/client',
// 'hailstone/server'. Fleet mode's etcd client is loaded only when a server or client is
// given `etcd`.

export * from './entry/generator.js';
export { createClient, parseKey, readKeyFile, MIN_KEY_BYTES, MAX_IDS_PER_REQUEST } from './entry/client.js';
export type { Client, ClientOptions, ClientStats, NodeIdConflict, PoolOptions, PoolStats } from './entry/client.js';
export * from './entry/server.js';
