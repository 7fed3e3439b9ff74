// Fleet discovery (src/fleet/discovery.ts) over the in-memory coordinator: a client that has
// no server to ask reads the claims again, so a watch that stalled (as an etcd3 watch can
// after an etcd restart that forgot every token) cannot leave it blind.

import { describe, expect, it } from 'vitest';
import type { Coordinator } from '../src/fleet/coordinator.js';
import { FleetDiscovery } from '../src/fleet/discovery.js';
import { claimKey } from '../src/fleet/etcd.js';
import { systemRuntime } from '../src/system-runtime.js';
import { liveMemoryEtcd } from './sim/live.js';

/** The memory coordinator with a watch that never says anything: a stream that stalled. */
function stalledWatch(coordinator: Coordinator): Coordinator {
  return new Proxy(coordinator, {
    get: (target, key) => (key === 'watch' ? async () => ({ cancel: async () => undefined }) : Reflect.get(target, key)),
  });
}

describe('fleet discovery', () => {
  it('refresh() reads the claims again when the watch stalled, at most once a second', async () => {
    const { etcd, connect } = liveMemoryEtcd();
    let now = 0;
    const seen: string[][] = [];
    const discovery = new FleetDiscovery({ etcd: { endpoints: ['http://127.0.0.1:1'] }, cluster: 'd', coordinator: () => stalledWatch(connect()), runtime: { now: () => now, after: systemRuntime.after } }, (list) => seen.push(list));
    try {
      await discovery.ready;
      expect(discovery.list()).toEqual([]);
      etcd.adminPut(claimKey('d', 3), JSON.stringify({ instance: 'i1', host: 'h', udp: '127.0.0.1:7001', pid: 1, startedAt: 'x' }));
      // The watch says nothing: the list stays empty until it is read again.
      await new Promise((r) => setTimeout(r, 20));
      expect(discovery.list()).toEqual([]);
      discovery.refresh();
      await new Promise((r) => setTimeout(r, 20));
      expect(discovery.list()).toEqual(['127.0.0.1:7001']);
      // A server gone while the watch is stalled: gone from the list at the next refresh —
      // not before a second has passed since the last one.
      etcd.adminDelete(claimKey('d', 3));
      now += 500;
      discovery.refresh();
      await new Promise((r) => setTimeout(r, 20));
      expect(discovery.list()).toEqual(['127.0.0.1:7001']);
      now += 600;
      discovery.refresh();
      await new Promise((r) => setTimeout(r, 20));
      expect(discovery.list()).toEqual([]);
      expect(seen.at(-1)).toEqual([]);
    } finally {
      await discovery.close();
    }
  });

  it('a claim of a server without UDP (--no-udp, "udp": "") is passed over in silence; one bound to every interface is told', async () => {
    const { etcd, connect } = liveMemoryEtcd();
    const unusable: string[] = [];
    const discovery = new FleetDiscovery({ etcd: { endpoints: ['http://127.0.0.1:1'] }, cluster: 'u', coordinator: () => connect() }, () => undefined, (key) => unusable.push(key));
    try {
      etcd.adminPut(claimKey('u', 1), JSON.stringify({ instance: 'i1', host: 'h', udp: '127.0.0.1:7001', pid: 1, startedAt: 'x' }));
      etcd.adminPut(claimKey('u', 2), JSON.stringify({ instance: 'i2', host: 'h', udp: '', pid: 2, startedAt: 'x' }));
      etcd.adminPut(claimKey('u', 3), JSON.stringify({ instance: 'i3', host: 'h', udp: '0.0.0.0:7003', pid: 3, startedAt: 'x' }));
      await discovery.ready;
      expect(discovery.list()).toEqual(['127.0.0.1:7001']);
      expect(unusable).toEqual([claimKey('u', 3)]);
      // A server that had UDP and comes back without it leaves the list.
      etcd.adminPut(claimKey('u', 1), JSON.stringify({ instance: 'i4', host: 'h', udp: '', pid: 4, startedAt: 'y' }));
      await new Promise((r) => setTimeout(r, 20));
      expect(discovery.list()).toEqual([]);
      expect(unusable).toEqual([claimKey('u', 3)]);
    } finally {
      await discovery.close();
    }
  });

  it('close() ends even when the watch never confirms its cancel (its stream died with an etcd restart)', async () => {
    const { connect } = liveMemoryEtcd();
    const deaf = (coordinator: Coordinator): Coordinator =>
      new Proxy(coordinator, { get: (target, key) => (key === 'watch' ? async () => ({ cancel: () => new Promise<void>(() => undefined) }) : Reflect.get(target, key)) });
    const discovery = new FleetDiscovery({ etcd: { endpoints: ['http://127.0.0.1:1'] }, cluster: 'c', coordinator: () => deaf(connect()) }, () => undefined);
    await discovery.ready;
    let timer: NodeJS.Timeout | undefined;
    const outcome = await Promise.race([discovery.close().then(() => 'closed'), new Promise((resolve) => (timer = setTimeout(() => resolve('still waiting after 10 s'), 10_000)))]);
    clearTimeout(timer);
    expect(outcome).toBe('closed');
  });
});
