// Finding the live servers of a fleet: the UDP addresses in the claim keys, read once and
// then followed with a watch (a server that claims appears, one whose lease ends goes), and
// read again when a client has no server to ask (the watch is not the only way to learn).

import { unusableAddress } from '../address.js';
import type { ServerDiscovery } from '../client/discovery.js';
import type { Coordinator, Watch } from './coordinator.js';
import { type ClaimInfo, type EtcdOptions, checkCluster, claimsPrefix } from './etcd.js';
import { etcdCoordinator } from './etcd-adapter.js';
import { etcdRefusal } from './etcd-refusal.js';
import { holderOf } from './holder.js';
import type { Cancel, FleetRuntime } from './runtime.js';
import { systemRuntime } from '../system-runtime.js';

export interface DiscoveryOptions {
  etcd: EtcdOptions;
  cluster?: string;
  /** Connects to the coordinator. Default: etcd at `etcd`. */
  coordinator?: () => Coordinator;
  /** The clock refresh() rate-limits by, and the timer close() waits on. Default: the process's. */
  runtime?: Pick<FleetRuntime, 'now' | 'after'>;
}

/** How long close() waits for etcd to confirm the watch's cancel before closing the connection anyway. */
const CANCEL_WAIT_MS = 1000;
/** refresh() reads the claims at most this often. */
const REFRESH_EVERY_MS = 1000;

export class FleetDiscovery implements ServerDiscovery {
  private readonly client: Coordinator;
  private readonly prefix: string;
  private readonly cluster: string;
  private readonly servers = new Map<string, string>();
  /** "key udp" of each unusable claim already told. */
  private readonly told = new Set<string>();
  private watcher: Watch | undefined;
  private closed = false;
  private refreshing = false;
  private refreshedAt = -Infinity;
  private readonly runtime: Pick<FleetRuntime, 'now' | 'after'>;
  /** Resolves once the first list was read (rejects if etcd cannot be read). */
  readonly ready: Promise<void>;

  constructor(
    private readonly options: DiscoveryOptions,
    private readonly onChange: (servers: string[]) => void,
    /** Told once per claim and address that no client can use (a server bound to 0.0.0.0 without --advertise): it is passed over. */
    private readonly onUnusable: (claimKey: string, info: Partial<ClaimInfo>, why: string) => void = () => undefined,
  ) {
    this.client = options.coordinator?.() ?? etcdCoordinator(options.etcd);
    this.runtime = options.runtime ?? systemRuntime;
    this.cluster = checkCluster(options.cluster);
    this.prefix = claimsPrefix(this.cluster);
    this.ready = this.load();
    this.ready.catch(() => undefined);
  }

  /** Why etcd refuses this client (TLS, password, permission), if that is what `error` says. */
  refusal(error: unknown): string | undefined {
    return etcdRefusal(error, { etcd: this.options.etcd, cluster: this.cluster, role: 'client' });
  }

  /**
   * Where it looked, and which other clusters of this etcd have claims (a client given no
   * --cluster looks in "default", and servers started with one are easy to miss). A role
   * that may read only this cluster's claims gets the first half.
   */
  async describeEmpty(): Promise<string> {
    const here = `no claims in cluster ${this.cluster}`;
    const root = 'hailstone/';
    const keys = await this.client
      .range(root, { keysOnly: true })
      .then(({ kvs }) => kvs.map((kv) => kv.key))
      .catch(() => [] as string[]);
    const counts = new Map<string, number>();
    for (const key of keys) {
      const m = /^hailstone\/([^/]+)\/claims\/\d+$/.exec(key);
      if (m !== null && m[1] !== this.cluster) counts.set(m[1]!, (counts.get(m[1]!) ?? 0) + 1);
    }
    if (counts.size === 0) return here;
    const others = [...counts].sort(([a], [b]) => (a < b ? -1 : 1)).map(([name, n]) => `${name} (${n})`);
    return `${here}; claims are in cluster${counts.size > 1 ? 's' : ''} ${others.join(', ')}: give --cluster (or cluster) to ask there`;
  }

  /** Reads the claims again (at most once a second), replacing the list: a watch that stalled is not the only way to learn of servers. */
  refresh(): void {
    const now = this.runtime.now();
    if (this.closed || this.refreshing || now - this.refreshedAt < REFRESH_EVERY_MS) return;
    this.refreshing = true;
    this.refreshedAt = now;
    this.client
      .range(this.prefix)
      .then(({ kvs }) => {
        if (!this.closed) this.replaceFrom(kvs);
      })
      .catch(() => undefined)
      .finally(() => {
        this.refreshing = false;
      });
  }

  list(): string[] {
    return [...new Set(this.servers.values())].sort();
  }

  async close(): Promise<void> {
    this.closed = true;
    // etcd3's cancel waits for etcd to confirm it on the watch's stream; a stream that died
    // with its etcd (a restart) may never confirm, and close() must not wait forever for it:
    // closing the connection ends the watch anyway. (A timer that keeps the process alive: a
    // script that awaits close() must see it settle, and the wait is bounded.)
    const cancelled = this.watcher?.cancel().catch(() => undefined);
    let timer: Cancel | undefined;
    await Promise.race([cancelled, new Promise<void>((resolve) => (timer = this.runtime.after(CANCEL_WAIT_MS, resolve)))]);
    timer?.cancel();
    this.client.close();
  }

  private async load(): Promise<void> {
    const result = await this.client.range(this.prefix);
    this.replaceFrom(result.kvs);
    if (this.closed) return;
    // From the revision just read on: nothing between the read and the watch is missed.
    const watcher = await this.client.watch(this.prefix, String(BigInt(result.revision) + 1n), ({ type, kv }) => {
      if (type === 'put') this.set(kv.key, kv.value);
      else this.servers.delete(kv.key);
      this.onChange(this.list());
    });
    if (this.closed) {
      await watcher.cancel();
      return;
    }
    this.watcher = watcher;
  }

  /** The list, as these claims say it is. */
  private replaceFrom(kvs: readonly { key: string; value: string }[]): void {
    this.servers.clear();
    for (const kv of kvs) this.set(kv.key, kv.value);
    this.onChange(this.list());
  }

  private set(key: string, value: string): void {
    // Not a claim this client understands: ignore it.
    const info = holderOf(value);
    if (typeof info?.udp !== 'string') return;
    // A server that serves no UDP (--no-udp) is no server for a UDP client.
    if (info.udp === '') {
      this.servers.delete(key);
      return;
    }
    // A server bound to every interface names no address a client can use: pass it over, and say so once.
    const why = unusableAddress(info.udp);
    if (why === undefined) {
      this.servers.set(key, info.udp);
      return;
    }
    this.servers.delete(key);
    if (this.told.has(`${key} ${info.udp}`)) return;
    this.told.add(`${key} ${info.udp}`);
    this.onUnusable(key, info, why);
  }
}
