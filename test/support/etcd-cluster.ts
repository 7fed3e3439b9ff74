// A real 3-member etcd cluster on loopback, for fleet tests of what a server does when one
// member of its etcd is killed, is the leader, or hangs (SIGSTOP): a single etcd cannot
// show any of that, since losing it is losing all of etcd.
//
// Ports are chosen below the kernel's ephemeral range (freeLowPorts): an ephemeral port that is free when
// probed can be taken by any outgoing connection (a gRPC client, a test's UDP socket)
// before a member restarted on it binds it again. Each cluster gets its own
// --initial-cluster-token, so members of two clusters (two test files at once) never join.
// Elections use loopback timings (50 ms heartbeat, 500 ms election timeout): a lost leader
// is replaced in about a second, not in etcd's WAN-sized default of several.
//
// Members run as tracked children (scope 'file'): killed after the file even when it fails.
// The leader is read through etcd's gRPC-JSON gateway (/v3/maintenance/status), so no
// etcdctl is needed (CI installs only the server).

import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freeLowPorts } from '../../bench/harness.js';
import { socketInodesOf } from '../../src/server/proc-sockets.js';
import { collectText, exited, sleep, spawnTracked, waitFor } from './child.js';

const MEMBERS = 3;

export interface MemberStatus {
  memberId: string;
  leader: string;
  raftTerm: number;
}

export class EtcdMember {
  private child: ChildProcess | undefined;
  private log = { text: () => '' };
  private stopped = false;
  /** etcd's member id (decimal, as the gateway prints it), known once it answered. */
  memberId: string | undefined;

  constructor(
    readonly index: number,
    readonly name: string,
    readonly clientPort: number,
    readonly peerPort: number,
    readonly dataDir: string,
    private readonly initialCluster: string,
    private readonly token: string,
    /** More flags for etcd (e.g. --metrics extensive). */
    private readonly extraArgs: string[] = [],
  ) {}

  get endpoint(): string {
    return `http://127.0.0.1:${this.clientPort}`;
  }

  get pid(): number | undefined {
    return this.running ? this.child?.pid : undefined;
  }

  /** A live process (perhaps paused). */
  get running(): boolean {
    const c = this.child;
    return c !== undefined && c.exitCode === null && c.signalCode === null;
  }

  /** SIGSTOPped and not continued yet. */
  get paused(): boolean {
    return this.running && this.stopped;
  }

  /** What it wrote to stderr (errors only), for failure messages. */
  stderr(): string {
    return this.log.text();
  }

  /** Starts the process (again: the data dir decides, the --initial-* flags are then ignored). */
  spawn(): ChildProcess {
    this.stopped = false;
    const peer = `http://127.0.0.1:${this.peerPort}`;
    this.child = spawnTracked('etcd', [
      '--name', this.name,
      '--data-dir', this.dataDir,
      '--listen-client-urls', this.endpoint,
      '--advertise-client-urls', this.endpoint,
      '--listen-peer-urls', peer,
      '--initial-advertise-peer-urls', peer,
      '--initial-cluster', this.initialCluster,
      '--initial-cluster-state', 'new',
      '--initial-cluster-token', this.token,
      '--heartbeat-interval', '50',
      '--election-timeout', '500',
      // As etcd 3.5 does by default: a member that comes back (continued after SIGSTOP) asks
      // before it campaigns, so it does not depose a healthy leader with a higher term.
      '--pre-vote',
      // etcd 3.4's default logger (capnslog) ignores --log-level and prints every raft step.
      '--logger', 'zap',
      '--log-level', 'error',
      ...this.extraArgs,
    ], { scope: 'file' });
    this.log = collectText(this.child.stderr!);
    return this.child;
  }

  /** /v3/maintenance/status through the gateway; undefined when it does not answer in time (down, paused). */
  async status(timeoutMs = 500): Promise<MemberStatus | undefined> {
    if (!this.running || this.stopped) return undefined;
    try {
      const res = await fetch(`${this.endpoint}/v3/maintenance/status`, { method: 'POST', body: '{}', signal: AbortSignal.timeout(timeoutMs) });
      if (!res.ok) return undefined;
      const body = (await res.json()) as { header?: { member_id?: string }; leader?: string; raftTerm?: string };
      if (body.header?.member_id === undefined) return undefined;
      this.memberId = body.header.member_id;
      return { memberId: body.header.member_id, leader: body.leader ?? '0', raftTerm: Number(body.raftTerm ?? 0) };
    } catch {
      return undefined;
    }
  }

  /** /health: true once it is part of a cluster with a leader and answers reads. */
  async healthy(timeoutMs = 1000): Promise<boolean> {
    if (!this.running || this.stopped) return false;
    try {
      const res = await fetch(`${this.endpoint}/health`, { signal: AbortSignal.timeout(timeoutMs) });
      return res.ok && ((await res.json()) as { health?: string }).health === 'true';
    } catch {
      return false;
    }
  }

  async waitHealthy(timeoutMs = 20_000): Promise<void> {
    const child = this.child;
    await waitFor(async () => (await this.healthy()) || undefined, {
      what: `etcd member ${this.name} (${this.endpoint}) to be healthy`,
      ...(child === undefined ? {} : { child }),
      stderr: this.log,
      timeoutMs,
      everyMs: 50,
    });
  }

  /** SIGKILL (also when paused: a stopped process dies of SIGKILL too); resolves once it is gone. */
  async kill(): Promise<void> {
    const child = this.child;
    if (child === undefined || !this.running) return;
    child.kill('SIGKILL');
    await exited(child);
    this.stopped = false;
  }

  /** Starts it again on the same data dir and ports; resolves once it is healthy. */
  async restart(): Promise<void> {
    if (this.running) throw new Error(`etcd member ${this.name} still runs: kill it first`);
    this.spawn();
    await this.waitHealthy();
  }

  pause(): void {
    if (!this.running) throw new Error(`etcd member ${this.name} is not running`);
    process.kill(this.child!.pid!, 'SIGSTOP');
    this.stopped = true;
  }

  resume(): void {
    if (!this.running) return;
    process.kill(this.child!.pid!, 'SIGCONT');
    this.stopped = false;
  }
}

export class EtcdCluster {
  private constructor(readonly members: EtcdMember[]) {}

  /** Every member's client URL, comma-joined, as `--etcd` takes them. */
  get endpoints(): string {
    return this.members.map((m) => m.endpoint).join(',');
  }

  member(i: number): EtcdMember {
    const m = this.members[i];
    if (m === undefined) throw new Error(`no etcd member ${i}`);
    return m;
  }

  /** The member listening on this client port, if any. */
  memberByClientPort(port: number): EtcdMember | undefined {
    return this.members.find((m) => m.clientPort === port);
  }

  /**
   * Starts 3 members; resolves once every one is healthy and they agree on a leader. A
   * member that exits while starting (its port was taken after the probe) makes it try
   * again on other ports.
   */
  static async start(extraArgs: string[] = []): Promise<EtcdCluster> {
    const taken = new Set<number>();
    for (let attempt = 1; ; attempt++) {
      const ports = await freeLowPorts(2 * MEMBERS, taken);
      for (const p of ports) taken.add(p);
      const token = `hailstone-${process.pid}-${randomBytes(6).toString('hex')}`;
      const names = Array.from({ length: MEMBERS }, (_, i) => `m${i}`);
      const initialCluster = names.map((n, i) => `${n}=http://127.0.0.1:${ports[MEMBERS + i]}`).join(',');
      const members = names.map(
        (n, i) => new EtcdMember(i, n, ports[i]!, ports[MEMBERS + i]!, mkdtempSync(join(tmpdir(), `hailstone-etcd-${n}-`)), initialCluster, token, extraArgs),
      );
      const cluster = new EtcdCluster(members);
      for (const m of members) m.spawn();
      try {
        await Promise.all(members.map((m) => m.waitHealthy(30_000)));
        await cluster.waitForLeader();
        return cluster;
      } catch (error) {
        const why = members.map((m) => `${m.name}: ${m.stderr().slice(-500)}`).join('\n');
        await cluster.stop();
        if (attempt >= 3 || !/address already in use/.test(why)) throw new Error(`etcd cluster did not start: ${(error as Error).message}\n${why}`);
      }
    }
  }

  /**
   * The index of the leader, as the members that answer report it; undefined while they
   * have none or disagree (an election in progress), or name one that is killed or paused.
   * A paused or killed member is not asked.
   */
  async leaderIndex(): Promise<number | undefined> {
    const statuses = (await Promise.all(this.members.map((m) => m.status()))).filter((s) => s !== undefined);
    if (statuses.length === 0) return undefined;
    const leaders = new Set(statuses.map((s) => s.leader));
    if (leaders.size !== 1) return undefined;
    const leader = [...leaders][0]!;
    if (leader === '0') return undefined;
    const index = this.members.findIndex((m) => m.memberId === leader);
    // Until their election timeout the others still name a leader that was just killed or paused.
    if (index < 0 || !this.members[index]!.running || this.members[index]!.paused) return undefined;
    return index;
  }

  async waitForLeader(timeoutMs = 20_000): Promise<number> {
    return waitFor(() => this.leaderIndex(), { what: 'the etcd members to agree on a leader', timeoutMs, everyMs: 50 });
  }

  /** The highest raft term a member reports: it grows by at least one with every election. */
  async term(): Promise<number> {
    const statuses = await Promise.all(this.members.map((m) => m.status()));
    return Math.max(0, ...statuses.map((s) => s?.raftTerm ?? 0));
  }

  /** Indexes of the members that are not the leader. */
  async followers(): Promise<number[]> {
    const leader = await this.waitForLeader();
    return this.members.map((m) => m.index).filter((i) => i !== leader);
  }

  /** Continues paused members and restarts killed ones; resolves once all are healthy under one leader. */
  async heal(): Promise<void> {
    for (const m of this.members) if (m.paused) m.resume();
    for (const m of this.members) if (!m.running) m.spawn();
    await Promise.all(this.members.map((m) => m.waitHealthy()));
    await this.waitForLeader();
  }

  /** Kills every member (continuing paused ones first, so none lingers stopped) and removes the data dirs. */
  async stop(): Promise<void> {
    for (const m of this.members) m.resume();
    await Promise.all(this.members.map((m) => m.kill()));
    for (const m of this.members) rmSync(m.dataDir, { recursive: true, force: true });
    await sleep(0);
  }

  /**
   * The members that a process and its descendants (a primary and its workers) hold
   * established TCP connections to, with how many: read from /proc, matching each of the
   * processes' socket inodes with the kernel's TCP table.
   */
  connectionsOf(pid: number): Map<number, number> {
    const inodes = new Set<string>();
    for (const p of processTree(pid)) for (const inode of socketInodesOf(p)) inodes.add(inode);
    const counts = new Map<number, number>();
    for (const table of ['tcp', 'tcp6']) {
      let text: string;
      try {
        text = readFileSync(`/proc/${pid}/net/${table}`, 'utf8');
      } catch {
        continue;
      }
      for (const line of text.split('\n').slice(1)) {
        const f = line.trim().split(/\s+/);
        // sl local rem st tx:rx tr:when retrnsmt uid timeout inode
        if (f.length < 10 || f[3] !== '01' || !inodes.has(f[9]!)) continue;
        const remotePort = parseInt(f[2]!.split(':')[1]!, 16);
        const member = this.memberByClientPort(remotePort);
        if (member !== undefined) counts.set(member.index, (counts.get(member.index) ?? 0) + 1);
      }
    }
    return counts;
  }
}

/** A process and all its descendants (Linux /proc: every thread's children). */
export function processTree(pid: number): number[] {
  const all = [pid];
  for (let i = 0; i < all.length; i++) {
    const p = all[i]!;
    let tasks: string[];
    try {
      tasks = readdirSync(`/proc/${p}/task`);
    } catch {
      continue;
    }
    for (const t of tasks) {
      try {
        const text = readFileSync(`/proc/${p}/task/${t}/children`, 'utf8').trim();
        if (text !== '') all.push(...text.split(/\s+/).map(Number));
      } catch {
        // gone
      }
    }
  }
  return all;
}
