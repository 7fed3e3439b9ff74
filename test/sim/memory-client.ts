// One process's connection to the in-memory coordinator: the coordinator port over a
// simulated network, with the faults a real etcd and its network have —
//   unreachable: the coordinator is down, or this process is partitioned from it: every
//     request times out at its deadline;
//   delay: requests and replies take longer (a slow disk, a congested link);
//   reply lost: the request was applied, but its answer never arrives (the client sees a
//     timeout and cannot tell it from a request that was never applied);
//   deposed leader: a keepalive answered "lease not found" by a member that lost its
//     leadership while the lease lives on;
//   election: no leader for a while; every request stalls until there is one (and times out
//     if that takes longer than its deadline, though it may still be applied later).
// Answers reach the process through SimProcess.deliver: a paused process gets them when it
// resumes, a dead one never.

import { type Compare, type Coordinator, CoordinatorError, type KeyValue, type LeaseTtl, type Op, type TxnResult, type Watch, type WatchEvent } from '../../src/fleet/coordinator.js';
import { ETCD_REQUEST_TIMEOUT_MS } from '../../src/fleet/etcd.js';
import type { Applied, MemoryEtcd } from './memory-etcd.js';
import type { Clockwork } from './scheduler.js';

/** What the network and the coordinator's health are at this moment (the simulator's fault state). */
export interface SimNetwork {
  readonly scheduler: Clockwork;
  readonly etcd: MemoryEtcd;
  /** Whether the coordinator answers at all (false: down, or restarting). */
  up(): boolean;
  /** Whether this process reaches the coordinator. */
  reachable(process: number): boolean;
  /** One way of a request or reply, ms (with any delay fault). */
  latencyMs(): number;
  /** When requests stop stalling (an election in progress), or now. */
  leaderAt(): number;
  /** Whether this applied request's reply is lost. */
  replyLost(): boolean;
  /** Whether this keepalive is answered by a deposed leader. */
  deposedAnswer(): boolean;
}

/** How a simulated process receives what the network brings it. */
export interface SimDelivery {
  readonly id: number;
  /** Runs `fn` in the process: now, when it resumes from a pause, or never if it died. */
  deliver(fn: () => void): void;
}

export class MemoryClient implements Coordinator {
  readonly describe = 'sim://coordinator';
  readonly health: ReadonlyMap<string, boolean> = new Map();
  private closed = false;

  constructor(
    private readonly net: SimNetwork,
    private readonly process: SimDelivery,
  ) {}

  txn(compares: Compare[], then: Op[], otherwise: Op[] = []): Promise<TxnResult> {
    return this.request((etcd) => etcd.txn(compares, then, otherwise));
  }

  get(key: string): Promise<KeyValue | undefined> {
    return this.request((etcd) => ({ ok: true, value: etcd.get(key) }));
  }

  range(prefix: string, options: { keysOnly?: boolean } = {}): Promise<{ kvs: KeyValue[]; revision: string }> {
    return this.request((etcd) => ({ ok: true, value: etcd.range(prefix, options.keysOnly === true) }));
  }

  grantLease(ttlS: number): Promise<string> {
    return this.request((etcd) => ({ ok: true, value: etcd.grant(ttlS) }));
  }

  keepAlive(leaseId: string, timeoutMs: number): Promise<number> {
    return this.request((etcd) => {
      if (etcd.hasLease(leaseId) && this.net.deposedAnswer()) return { ok: false, leaseGone: 'etcdserver: requested lease not found (answered by a deposed leader)' };
      return etcd.keepAlive(leaseId);
    }, timeoutMs);
  }

  async revokeLease(leaseId: string): Promise<void> {
    await this.request((etcd) => {
      etcd.revoke(leaseId);
      return { ok: true, value: undefined };
    });
  }

  forgetLease(): void {
    // Nothing is kept per lease on this side.
  }

  leaseTimeToLive(leaseId: string): Promise<LeaseTtl | undefined> {
    return this.request((etcd) => ({ ok: true, value: etcd.timeToLive(leaseId) }));
  }

  async watch(prefix: string, fromRevision: string, onEvent: (event: WatchEvent) => void): Promise<Watch> {
    const stop = await this.request((etcd) => ({ ok: true, value: etcd.watch(prefix, Number(fromRevision), (event) => this.process.deliver(() => onEvent(event))) }));
    return { cancel: async () => stop() };
  }

  close(): void {
    this.closed = true;
  }

  /**
   * A request over the simulated network: it travels, waits for a leader, is applied at one
   * instant, and its answer travels back — or it times out at its deadline, as a real client
   * would see any of the faults.
   */
  private request<T>(apply: (etcd: MemoryEtcd) => Applied<T>, timeoutMs = ETCD_REQUEST_TIMEOUT_MS): Promise<T> {
    const { net, process } = this;
    const { scheduler } = net;
    return new Promise<T>((resolve, reject) => {
      let answered = false;
      const answer = (fn: () => void) =>
        process.deliver(() => {
          if (answered) return;
          answered = true;
          deadline.cancelled = true;
          fn();
        });
      const deadline = scheduler.after(timeoutMs, () => answer(() => reject(new CoordinatorError('unreachable', `sim: no answer within ${timeoutMs} ms (DEADLINE_EXCEEDED)`))));
      if (this.closed) {
        answer(() => reject(new CoordinatorError('unreachable', 'sim: the client is closed')));
        return;
      }
      if (!net.up() || !net.reachable(process.id)) return; // lost on the way: the deadline answers
      scheduler.after(net.latencyMs(), () => {
        const applyNow = () => {
          if (!net.up() || !net.reachable(process.id)) return;
          const result = apply(net.etcd);
          if (net.replyLost()) return;
          scheduler.after(net.latencyMs(), () => {
            if (!net.reachable(process.id)) return;
            answer(() => (result.ok ? resolve(result.value) : reject(new CoordinatorError('lease-gone', result.leaseGone))));
          });
        };
        const leader = net.leaderAt();
        if (leader > scheduler.now) scheduler.at(leader, applyNow);
        else applyNow();
      });
    });
  }
}
