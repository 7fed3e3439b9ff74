// createClient(): the UDP client, with fleet discovery when it is given etcd. The client
// itself (src/client/) takes any discovery and knows nothing of etcd; the etcd client
// library is loaded only when a discovery first connects.

import { type Client, type ClientCoreOptions, createUdpClient } from './client/client.js';
import { FleetDiscovery } from './fleet/discovery.js';
import type { EtcdOptions } from './fleet/etcd.js';

export interface ClientOptions extends Omit<ClientCoreOptions, 'discover'> {
  /** Fleet mode: find the live servers of `cluster` in etcd (and follow them with a watch). */
  etcd?: EtcdOptions;
  /** Fleet mode: the cluster's name. Default "default". */
  cluster?: string;
}

export function createClient(options: ClientOptions): Client {
  const etcd = options?.etcd;
  if (etcd === undefined) return createUdpClient(options);
  const { etcd: _etcd, cluster, ...rest } = options;
  return createUdpClient({
    ...rest,
    discover: (onChange) =>
      new FleetDiscovery({ etcd, cluster }, onChange, (key, info, why) =>
        process.emitWarning(`the fleet's claim ${key} (host ${info.host ?? '?'}, pid ${info.pid ?? '?'}) names udp ${info.udp}: ${why}; that server is passed over — start it with --advertise HOST:PORT`, {
          code: 'HAILSTONE_UNUSABLE_ADDRESS',
        }),
      ),
  });
}
