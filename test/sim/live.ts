// The in-memory coordinator in real time, for the contract tests it shares with the real
// etcd: the same MemoryEtcd and MemoryClient the simulator drives, on real timers, with a
// network that loses nothing.

import { performance } from 'node:perf_hooks';
import { MemoryClient, type SimNetwork } from './memory-client.js';
import { MemoryEtcd } from './memory-etcd.js';
import type { Clockwork, ScheduledEvent } from './scheduler.js';

const realTime: Clockwork = {
  get now() {
    return performance.now();
  },
  at(time, run) {
    const event: ScheduledEvent = { at: time, seq: 0, cancelled: false, run };
    setTimeout(() => event.cancelled || run(), Math.max(0, time - performance.now()));
    return event;
  },
  after(ms, run) {
    return this.at(performance.now() + ms, run);
  },
};

/** A fresh in-memory etcd and a way to connect to it (each connection is a MemoryClient). */
export function liveMemoryEtcd(): { etcd: MemoryEtcd; connect: () => MemoryClient } {
  const etcd = new MemoryEtcd(() => performance.now());
  const net: SimNetwork = {
    scheduler: realTime,
    etcd,
    up: () => true,
    reachable: () => true,
    latencyMs: () => 0,
    leaderAt: () => 0,
    replyLost: () => false,
    deposedAnswer: () => false,
  };
  const process = { id: 0, deliver: (fn: () => void) => fn() };
  return { etcd, connect: () => new MemoryClient(net, process) };
}
