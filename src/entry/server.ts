// hailstone/server: a crash-safe node and the UDP id service over it. Fleet mode (etcd) is
// loaded only by a server given `etcd`.

export { openNode } from '../node/open.js';
export { stateFileName } from '../node/file-store.js';
export { DEFAULT_RESERVATION_MS } from '../node/options.js';
export { stderrLogger } from '../logger.js';
export type { NodeLogger } from '../logger.js';
export type { HailstoneNode, NodeStatus, RefusalReason } from '../node/node.js';
export type { NodeOptions, NodeTimer, StartupWait } from '../node/options.js';
export type { StorageFs, StorageFile } from '../node/storage.js';
export type { ProcessProbe, LockOwner } from '../node/lock.js';
export type { KernelLocks } from '../node/kernel-lock.js';
export { serve } from '../serve.js';
export type { ServeOptions } from '../serve.js';
export { DEFAULT_HOST, DEFAULT_PORT, servingNodeOf } from '../server/server.js';
export { parseAllowList } from '../server/allow-list.js';
export type { Server, ServerStats, ServingNode } from '../server/server.js';
export { serveHttp, readTokenFile } from '../server/http-server.js';
export type { HttpServeOptions, HttpIdServer } from '../server/http-server.js';
export type { HttpStats } from '../server/http-metrics.js';
export { HTTP_MAX_IDS } from '../server/http-routes.js';
export type { RateLimitOptions } from '../server/rate-limit.js';
export type { FleetOptions } from '../fleet/member.js';
export type { FleetStats } from '../node/source.js';
export type { EtcdOptions, ClaimInfo } from '../fleet/etcd.js';
export type { ClaimRef } from '../fleet/etcd-store.js';
export type { Transport, DatagramSource, DatagramHandler, TransportName, TransportStats } from '../server/transport.js';
export { DgramTransport } from '../server/dgram-transport.js';
export { NativeTransport } from '../server/native-transport.js';
export type { NativeTransportOptions } from '../server/native-transport.js';
export { nativeAvailability } from '../server/native-addon.js';
export type { NativeAvailability } from '../server/native-addon.js';
export { createTransport, resolveTransport } from '../server/select-transport.js';
export type { TransportChoice } from '../server/select-transport.js';
export { holdPort, reservePortForWorkers } from '../server/port-guard.js';
export type { PortGuard, PortHolder } from '../server/port-guard.js';
