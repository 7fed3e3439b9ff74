// The fleet simulator: N members — each a real FleetMember with its real node, over the
// in-memory coordinator — and their clients, under one seeded scheduler in virtual time,
// with crashes, pauses, clock steps, partitions and coordinator faults drawn from the seed.
// The invariants are checked as ids are issued, and the first violation is reported with
// the events that led to it; the same seed gives the same trace, so any failure replays.

import { createHash } from 'node:crypto';
import { DEFAULT_LAYOUT, type Layout, defineLayout } from '../../src/layout.js';
import type { Backend } from '../../src/generator.js';
import { readIds } from '../../src/codec.js';
import { HailstoneError } from '../../src/errors.js';
import { FleetMember } from '../../src/fleet/member.js';
import { type FleetMutation, mutate } from '../../src/fleet/mutations.js';
import type { HailstoneNode } from '../../src/node/node.js';
import type { ReservationLink } from '../../src/fleet/node-reservation.js';
import { OwnershipLostError } from '../../src/node/store.js';
import type { NodeLogger } from '../../src/logger.js';
import { prng } from '../support/seed.js';
import { SimProcesses, SimulatedFs } from '../support/sim-fs.js';
import { type Fault, type FaultKind, planFaults } from './faults.js';
import { MemoryClient, type SimNetwork } from './memory-client.js';
import { MemoryEtcd } from './memory-etcd.js';
import { Scheduler } from './scheduler.js';
import { MachineClock, SimProcess, subSeed } from './sim-process.js';

export interface SimOptions {
  seed: number;
  members?: number;
  /** Simulated minutes. */
  minutes?: number;
  /** Faults per simulated minute (0: none). Default 12. */
  faultsPerMinute?: number;
  /** Only these kinds of fault. */
  faultKinds?: FaultKind[];
  /** Worker stripes per member (--workers N): a primary claims, each worker serves a stripe. Default 1. */
  stripes?: number;
  /** Keep every trace line (for a failure's report and the replay test). Default: the last 40. */
  keepTrace?: boolean;
  /** A past bug switched back on for this run (src/fleet/mutations.ts): the simulator must find it. */
  mutation?: FleetMutation;
  /** Fixed settings instead of the seed's draw (the scale run: an operator's defaults, every id free). */
  fixed?: { leaseTtlS: number; maxLeadMs: number; smallLayout: boolean; givenIds: boolean; backend: Backend };
  /** How often each member's clients ask. Default 100 ms. */
  clientEveryMs?: number;
}

/** Which faults can take a holder's claim from it, by how its fence says it was lost. */
const FENCE_CAUSES: { reason: RegExp; kinds: FaultKind[] }[] = [
  // No keepalive got through in time: the holder could not reach etcd, or its answers were lost.
  { reason: /no lease keepalive confirmed/, kinds: ['pause', 'partition', 'delay', 'reply-loss', 'election', 'whole-restart'] },
  // The lease or the claim key really is gone: it ran out while the holder could not renew it.
  { reason: /./, kinds: ['pause', 'partition', 'delay', 'election', 'whole-restart'] },
];

/** Which faults can make a server exit, by the code it exits with. */
const EXIT_CAUSES: { code: RegExp; kinds: FaultKind[] }[] = [
  { code: /^COORDINATOR_UNAVAILABLE$/, kinds: ['partition', 'delay', 'election', 'whole-restart', 'reply-loss'] },
  { code: /^CLOCK_/, kinds: ['clock-back', 'clock-ahead'] },
];

export interface Violation {
  at: number;
  invariant: 'unique' | 'increasing' | 'one-holder' | 'liveness' | 'refusal-without-fault' | 'needless-fence' | 'needless-exit' | 'error';
  message: string;
}

export interface SimReport {
  seed: number;
  members: number;
  minutes: number;
  leaseTtlS: number;
  maxLeadMs: number;
  givenIds: number;
  /** Whether the members kept a --state-dir on their machine's simulated disk. */
  stateDirs: boolean;
  faults: number;
  faultKinds: Record<string, number>;
  ids: number;
  requests: number;
  /** Requests refused while a fault (or a start) explained it. */
  refusals: number;
  /** Refused requests by why: the node's refusal reason, or that no node was serving. */
  refusedBy: Record<string, number>;
  /** Share of requests served, per member. */
  availability: number[];
  violation: Violation | undefined;
  lastEvents: string[];
  traceHash: string;
  events: number;
  coordinatorRequests: number;
  /** The coordinator's requests by kind, over the whole run. */
  requestKinds: Record<string, number>;
  /** The coordinator's requests so far at each virtual second. */
  requestsBySecond: number[];
  /** When each member first served an id (virtual ms; -1: never). */
  firstServedAt: number[];
  virtualMs: number;
}

/** How long after the faults stop (or a process starts) every member must serve again, given the lease TTL. */
export function recoveryBoundMs(leaseTtlS: number, maxLeadMs: number): number {
  // A dead holder's lease (which a coordinator restart renews), the claim's own wait for it,
  // a re-claim's backoff, and the first reservation's wait for the clock.
  return 2 * leaseTtlS * 1000 + 15_000 + maxLeadMs;
}

/** What a worker's store finds when its claim is no longer the primary's: the claim is gone. */
function lostLink(createRevision: string): ReservationLink {
  const lost = () => Promise.reject(new OwnershipLostError(`the claim with revision ${createRevision} is no longer this server's: it claimed again`));
  return { open: lost, reserve: lost, describeFailure: () => undefined };
}

const EPOCH_MS = DEFAULT_LAYOUT.epoch + 900_000_000_000;
const CLIENT_EVERY_MS = 100;
/** An issued id's record: holder index × this + the virtual ms it was issued at (runs of up to a day). */
const ISSUED_AT_SPAN = 1e8;

/**
 * The first id that appears twice, as the positions of its first two appearances (in issue
 * order), or undefined when every id is distinct. Sorting a copy: one pass, no object per id.
 */
export function firstRepeat(ids: BigUint64Array): [number, number] | undefined {
  const sorted = ids.slice().sort();
  let repeated: bigint | undefined;
  for (let i = 1; i < sorted.length && repeated === undefined; i++) if (sorted[i] === sorted[i - 1]) repeated = sorted[i];
  if (repeated === undefined) return undefined;
  // Of all repeated ids, the one whose second issue came first is the first violation.
  const seen = new Set<bigint>();
  for (let j = 0; j < ids.length; j++) {
    const id = ids[j]!;
    if (seen.has(id)) return [ids.indexOf(id), j];
    seen.add(id);
  }
  return undefined;
}
/** At the end of a run, every member must serve within this last stretch (no fault may explain a refusal in it). */
const LIVENESS_TAIL_MS = 30_000;
const CLUSTER = 'sim';
/** A small cluster's layout: 32 node ids, so free claims meet the ids their predecessors left. */
const SMALL_LAYOUT = defineLayout({ nodeBits: 5, sequenceBits: 17 });

interface MemberSlot {
  index: number;
  clock: MachineClock;
  givenNodeId: number | undefined;
  process: SimProcess | undefined;
  incarnation: number;
  /** The node each stripe serves from (one stripe, or one per worker). */
  nodes: (HailstoneNode | undefined)[];
  /** Claims made by this member's processes, to name each holder. */
  claims: number;
  /** The machine's disk, when its servers keep a --state-dir (it outlives their processes; a power loss loses what was not synced). */
  disk: SimulatedFs | undefined;
  /** The machine's process table, for the state dir's locks. */
  processes: SimProcesses;
  /** The pid of the current process in that table. */
  pid: number;
  /** Virtual ms at which the current process started. */
  startedAt: number;
  served: number;
  asked: number;
  /** Virtual ms of the last id served. */
  lastServedAt: number;
  /** Virtual ms of the first id this member served. */
  firstServedAt: number;
}

/** What the checks keep for one node object (one stripe under one claim). */
interface NodeRecord {
  holder: string;
  holderIndex: number;
  lastId: bigint | undefined;
  tenure: Tenure;
  /** Every holder's tenure of this node id. */
  tenures: Tenure[];
}

/** A holder's tenure of a node id: the range of id timestamps it issued. */
interface Tenure {
  holder: string;
  min: number;
  max: number;
}

export class Simulation {
  readonly scheduler = new Scheduler();
  private readonly etcd: MemoryEtcd;
  private readonly net: SimNetwork & { down: boolean; partitioned: Set<number>; extraDelayMs: number; lossChance: number; deposedChance: number; leaderUntil: number };
  private readonly slots: MemberSlot[] = [];
  private readonly random: () => number;
  private readonly netRandom: () => number;
  private readonly hash = createHash('sha256');
  private readonly trace: string[] = [];
  private readonly keepTrace: boolean;
  /**
   * Every id issued, and who issued it and when (holder index × ISSUED_AT_SPAN + ms), in
   * issue order: typed arrays, no object per id. Checked for a repeat once the run ends —
   * a duplicate also breaks "increasing" or "one-holder", which are checked as ids come.
   */
  private issuedIds = new BigUint64Array(1 << 16);
  private issuedBy = new Float64Array(1 << 16);
  private issuedCount = 0;
  private readonly holders: string[] = [];
  private readonly holderIndexes = new Map<string, number>();
  private readonly buffer = new Uint8Array(8 * 4);
  private readonly records = new WeakMap<HailstoneNode, NodeRecord>();
  private readonly holderOf = new WeakMap<HailstoneNode, string>();
  private readonly tenures = new Map<number, Tenure[]>();
  /** Every fault as it hit: for telling a fence or an exit it explains from one nothing explains. */
  private readonly hits: { kind: FaultKind; member: number | undefined; from: number; until: number }[] = [];
  /** Windows in which a member may refuse: [from, until) per member, or for all (-1). */
  private readonly excuses: { member: number; from: number; until: number }[] = [];
  private violation: Violation | undefined;
  private events = 0;
  private ids = 0;
  private requests = 0;
  private refusals = 0;
  private readonly refusedBy: Record<string, number> = {};
  private readonly faults: Fault[];
  readonly members: number;
  readonly stripes: number;
  readonly minutes: number;
  readonly leaseTtlS: number;
  readonly maxLeadMs: number;
  readonly layout: Layout;
  readonly backend: Backend;
  readonly stateDirs: boolean;
  private readonly clientEveryMs: number;
  /** The coordinator's requests so far, sampled each virtual second (what a fleet costs it, over time). */
  private readonly requestsBySecond: number[] = [];
  private readonly tickShift: bigint;
  private readonly boundMs: number;
  private readonly quietAt: number;
  private readonly endAt: number;

  constructor(private readonly options: SimOptions) {
    const { seed } = options;
    this.random = prng(subSeed(seed, 'world'));
    this.netRandom = prng(subSeed(seed, 'network'));
    this.keepTrace = options.keepTrace ?? false;
    this.members = options.members ?? 16;
    this.stripes = options.stripes ?? 1;
    this.minutes = options.minutes ?? 10;
    // Per seed: the lease, the lead and the node ids, as operators choose them.
    const fixed = options.fixed;
    this.layout = (fixed === undefined ? this.random() < 0.5 : fixed.smallLayout) ? SMALL_LAYOUT : DEFAULT_LAYOUT;
    this.tickShift = BigInt(this.layout.sequenceBits + this.layout.nodeBits);
    this.leaseTtlS = fixed?.leaseTtlS ?? [3, 5, 10][Math.floor(this.random() * 3)]!;
    this.maxLeadMs = fixed?.maxLeadMs ?? [300, 1000, 2000][Math.floor(this.random() * 3)]!;
    this.clientEveryMs = options.clientEveryMs ?? CLIENT_EVERY_MS;
    // Both generator cores, one per seed (the scale run takes the TypeScript one: thousands
    // of WebAssembly instances would each reserve their own memory).
    this.backend = fixed?.backend ?? (this.random() < 0.5 ? 'wasm' : 'ts');
    this.boundMs = recoveryBoundMs(this.leaseTtlS, this.maxLeadMs);
    this.endAt = this.minutes * 60_000;
    // Faults stop early enough that each one's effect, the recovery bound after it and a
    // final 30 s in which every member must serve all fit before the end.
    const longestFaultMs = Math.max(2 * this.leaseTtlS * 1000 + 200, 16_000);
    this.quietAt = this.endAt - LIVENESS_TAIL_MS - this.boundMs - longestFaultMs;
    this.etcd = new MemoryEtcd(() => this.scheduler.now);
    const sim = this;
    this.net = {
      scheduler: this.scheduler,
      etcd: this.etcd,
      down: false,
      partitioned: new Set(),
      extraDelayMs: 0,
      lossChance: 0,
      deposedChance: 0,
      leaderUntil: 0,
      up: () => !sim.net.down,
      reachable: (p) => !sim.net.partitioned.has(p),
      latencyMs: () => 1 + Math.floor(sim.netRandom() * 3) + sim.net.extraDelayMs,
      leaderAt: () => sim.net.leaderUntil,
      replyLost: () => sim.net.lossChance > 0 && sim.netRandom() < sim.net.lossChance,
      deposedAnswer: () => sim.net.deposedChance > 0 && sim.netRandom() < sim.net.deposedChance,
    };
    // Given ids sit at the top of the range, where free claims (the lowest free ids) do not
    // reach — in a large layout. In a small one they would: a cluster of 32 ids either gives
    // every member its id or none (mixing them there is an operator's error the server
    // reports as NODE_ID_TAKEN, not a fault).
    // Half the seeds keep a state dir on each machine's (simulated) disk: an extra floor.
    // (Drawn apart from the rest of the world, so adding it left every other draw of a seed as it was.)
    const stateDirs = fixed === undefined && prng(subSeed(options.seed, 'state dirs'))() < 0.5;
    this.stateDirs = stateDirs;
    const givenShare = fixed !== undefined ? (fixed.givenIds ? 1 : 0) : this.layout === SMALL_LAYOUT ? (this.random() < 0.5 ? 0 : 1) : this.random() < 0.3 ? 0 : this.random();
    for (let i = 0; i < this.members; i++) {
      const drift = Math.round((this.random() - 0.5) * 400);
      this.slots.push({
        index: i,
        clock: new MachineClock(this.scheduler, EPOCH_MS + Math.floor(this.random() * 50), drift),
        // Given ids from the top of the range: free claims take the lowest free ids, so the two never meet.
        givenNodeId: this.random() < givenShare ? this.layout.maxNodeId - i : undefined,
        process: undefined,
        incarnation: 0,
        nodes: [],
        claims: 0,
        disk: stateDirs ? new SimulatedFs(prng(subSeed(options.seed, `disk ${i}`)), () => EPOCH_MS + this.scheduler.now) : undefined,
        processes: new SimProcesses(),
        pid: 0,
        startedAt: 0,
        served: 0,
        asked: 0,
        lastServedAt: -1,
        firstServedAt: -1,
      });
    }
    const perMinute = options.faultsPerMinute ?? 12;
    this.faults = perMinute === 0 || this.quietAt <= 5_000 ? [] : planFaults({ seed, members: this.members, from: 5_000, until: this.quietAt, perMinute, leaseTtlS: this.leaseTtlS, kinds: options.faultKinds });
  }

  async run(): Promise<SimReport> {
    const undo = this.options.mutation === undefined ? undefined : mutate(this.options.mutation);
    try {
      return await this.runAll();
    } finally {
      undo?.();
    }
  }

  private async runAll(): Promise<SimReport> {
    this.note('start', `${this.stateDirs ? 'state dirs ' : ''}backend ${this.backend} layout ${this.layout.nodeBits}/${this.layout.sequenceBits} members ${this.members} ttl ${this.leaseTtlS}s lead ${this.maxLeadMs}ms given ${this.slots.filter((s) => s.givenNodeId !== undefined).length} faults ${this.faults.length}`);
    for (const slot of this.slots) this.scheduler.at(Math.floor(this.random() * 2000), () => this.startProcess(slot));
    for (const fault of this.faults) this.scheduler.at(fault.at, () => this.inject(fault));
    this.clients();
    const sample = () => {
      this.requestsBySecond.push(this.coordinatorRequests());
      if (this.scheduler.now < this.endAt) this.scheduler.after(1000, sample);
    };
    this.scheduler.at(0, sample);
    await this.scheduler.runUntil(this.endAt, () => this.violation !== undefined);
    if (this.violation === undefined) this.checkUnique();
    if (this.violation === undefined) this.checkLiveness();
    return this.report();
  }

  private report(): SimReport {
    const kinds: Record<string, number> = {};
    for (const f of this.faults) kinds[f.kind] = (kinds[f.kind] ?? 0) + 1;
    return {
      seed: this.options.seed,
      members: this.members,
      minutes: this.minutes,
      leaseTtlS: this.leaseTtlS,
      maxLeadMs: this.maxLeadMs,
      givenIds: this.slots.filter((s) => s.givenNodeId !== undefined).length,
      stateDirs: this.stateDirs,
      faults: this.faults.length,
      faultKinds: kinds,
      ids: this.ids,
      requests: this.requests,
      refusals: this.refusals,
      refusedBy: this.refusedBy,
      availability: this.slots.map((s) => (s.asked === 0 ? 1 : s.served / s.asked)),
      violation: this.violation,
      lastEvents: this.trace.slice(-40),
      traceHash: this.hash.copy().digest('hex'),
      events: this.events,
      coordinatorRequests: this.coordinatorRequests(),
      requestsBySecond: this.requestsBySecond,
      requestKinds: { ...this.etcd.requests },
      firstServedAt: this.slots.map((s) => s.firstServedAt),
      virtualMs: this.scheduler.now,
    };
  }

  private coordinatorRequests(): number {
    const r = this.etcd.requests;
    return r.txn + r.range + r.get + r.grant + r.keepalive + r.revoke + r.ttl + r.watch;
  }

  /** One line of the trace: hashed, and kept for a failure's report. */
  private note(kind: string, detail: string): void {
    const line = `${this.scheduler.now} ${kind} ${detail}`;
    this.hash.update(line);
    this.hash.update('\n');
    this.events++;
    this.trace.push(line);
    if (!this.keepTrace && this.trace.length > 200) this.trace.splice(0, 100);
  }

  private violate(invariant: Violation['invariant'], message: string): void {
    if (this.violation !== undefined) return;
    this.violation = { at: this.scheduler.now, invariant, message };
    this.note('VIOLATION', `${invariant}: ${message}`);
  }

  private excuse(member: number, from: number, until: number): void {
    this.excuses.push({ member, from, until });
  }

  private excused(member: number, at: number): boolean {
    return this.excuses.some((e) => (e.member === member || e.member === -1) && e.from <= at && at < e.until);
  }

  private loggerOf(slot: MemberSlot, incarnation: number): NodeLogger {
    const line = (level: string) => (_fields: object, message: string) => {
      if (slot.incarnation === incarnation) this.note(`m${slot.index} ${level}`, message.slice(0, 160));
    };
    return { info: line('info'), warn: line('warn'), error: line('error') };
  }

  private startProcess(slot: MemberSlot): void {
    // A start while a process runs (a restart crossing a whole-system restart) replaces it.
    this.kill(slot, 'replaced by a new start');
    slot.incarnation++;
    const incarnation = slot.incarnation;
    const process = new SimProcess(this.scheduler, slot.index, incarnation, slot.clock, this.options.seed);
    slot.process = process;
    slot.nodes = [];
    slot.startedAt = this.scheduler.now;
    const { pid, probe } = slot.processes.spawn();
    slot.pid = pid;
    this.excuse(slot.index, this.scheduler.now, this.scheduler.now + this.boundMs);
    this.note(`m${slot.index} start`, `incarnation ${incarnation}${slot.givenNodeId === undefined ? '' : ` --node-id ${slot.givenNodeId}`}${this.stripes > 1 ? ` --workers ${this.stripes}` : ''}`);
    const logger = this.loggerOf(slot, incarnation);
    const common = {
      etcd: { endpoints: ['http://sim:2379'] },
      coordinator: () => new MemoryClient(this.net, process),
      runtime: process.runtime,
      cluster: CLUSTER,
      layout: this.layout,
      backend: this.backend,
      leaseTtlS: this.leaseTtlS,
      maxLeadMs: this.maxLeadMs,
      coordinatorWaitMs: 30_000,
      clock: () => slot.clock.read(),
      wallClock: () => EPOCH_MS + this.scheduler.now,
      timer: process.timer,
      sleep: (ms: number) => process.sleep(ms),
      logger,
      ...(slot.disk === undefined ? {} : { stateDir: '/state', fs: slot.disk, processes: probe, kernelLocks: false as const }),
    };
    const alive = () => process.alive && slot.process === process;
    const exit = (why: string) => {
      if (!alive()) return;
      this.note(`m${slot.index} exit`, why);
      process.alive = false;
      slot.processes.kill(slot.pid);
      slot.nodes = [];
      // An orchestrator starts it again.
      this.scheduler.after(1000 + Math.floor(this.random() * 2000), () => this.startProcess(slot));
    };
    const failed = (error: unknown) => {
      if (!alive()) return;
      if (!(error instanceof HailstoneError)) this.violate('error', `member ${slot.index} failed with a raw error: ${(error as Error)?.stack ?? String(error)}`);
      else this.exited(slot, error);
      exit(`start failed: ${(error as Error).message}`);
    };
    // One stripe: the member claims and serves. Several (--workers N): a primary claims and
    // keeps the node's one reservation; each worker serves its stripe under that claim.
    const workers: FleetMember[] = [];
    const primary = new FleetMember(
      { ...common, nodeId: slot.givenNodeId },
      {
        logger,
        udp: () => `10.0.0.${slot.index}:7000`,
        claimOnly: this.stripes > 1,
        onNode: (node) => {
          if (alive()) this.adopt(slot, 0, node, true);
        },
        onFence: (reason) => {
          if (!alive()) return;
          for (const node of slot.nodes) node?.stopIssuing(reason);
          this.fenced(slot, reason);
        },
        onClaim: (claim) => {
          if (!alive() || this.stripes === 1) return;
          slot.claims++;
          workers.forEach((worker, k) =>
            void worker.adopt(claim).catch((error: unknown) => {
              if (!alive() || workers[k] !== worker) return;
              this.note(`m${slot.index} worker ${k} failed`, (error as Error).message.slice(0, 160));
              slot.nodes[k] = undefined;
              this.scheduler.after(500, () => startWorker(k));
            }),
          );
        },
      },
    );
    // The supervisor: a worker that fails is started again under the primary's current claim.
    const startWorker = (k: number) => {
      const claim = primary.claimRef();
      if (!alive() || claim === undefined) {
        if (alive()) this.scheduler.after(500, () => startWorker(k));
        return;
      }
      const worker = new FleetMember(
        {
          ...common,
          fleetClaim: claim,
          reservationLink: (ref) => primary.reservationOf(ref.createRevision) ?? lostLink(ref.createRevision),
          worker: { index: k, count: this.stripes },
        },
        {
          logger,
          udp: () => `10.0.0.${slot.index}:7000`,
          onNode: (node) => {
            if (alive()) this.adopt(slot, k, node, false);
          },
        },
      );
      workers[k] = worker;
      const restart = (error: unknown) => {
        if (!alive() || workers[k] !== worker) return;
        if (!(error instanceof HailstoneError) && !(error instanceof OwnershipLostError)) {
          this.violate('error', `member ${slot.index} worker ${k} failed with a raw error: ${(error as Error)?.stack ?? String(error)}`);
          return;
        }
        this.note(`m${slot.index} worker ${k} failed`, (error as Error).message.slice(0, 160));
        slot.nodes[k] = undefined;
        this.scheduler.after(500, () => startWorker(k));
      };
      worker.start().then((node) => {
        if (alive() && node !== undefined && workers[k] === worker) this.adopt(slot, k, node, false);
      }, restart);
    };
    const startWorkers = () => {
      slot.claims++;
      for (let k = 0; k < this.stripes; k++) startWorker(k);
    };
    primary.start().then((node) => {
      if (!alive()) return;
      if (this.stripes > 1) startWorkers();
      else if (node !== undefined) this.adopt(slot, 0, node, true);
    }, failed);
    void primary.gaveUp.then((error) => {
      if (!alive()) return;
      this.exited(slot, error);
      exit(`gave up: ${error.message}`);
    });
  }

  /** A fault of one of these kinds hit this member (or every member) within `withinMs` before now. */
  private explained(slot: MemberSlot, kinds: FaultKind[], withinMs: number): boolean {
    const now = this.scheduler.now;
    return this.hits.some((h) => kinds.includes(h.kind) && (h.member === undefined || h.member === slot.index) && h.from <= now && now <= h.until + withinMs);
  }

  /** A fence must have a fault that can take a claim behind it: a lease's worth of time after one, at most. */
  private fenced(slot: MemberSlot, reason: string): void {
    this.note(`m${slot.index} fenced`, reason.slice(0, 160));
    const cause = FENCE_CAUSES.find((c) => c.reason.test(reason))!;
    if (!this.explained(slot, cause.kinds, 2 * this.leaseTtlS * 1000 + 5000)) {
      this.violate('needless-fence', `member ${slot.index} was fenced (${reason}) with no fault that can take a claim (${cause.kinds.join(', ')}) in the last ${2 * this.leaseTtlS} s`);
    }
  }

  /** A server exits only for what an operator must see: etcd gone past its wait, or a clock step it cannot wait out. */
  private exited(slot: MemberSlot, error: HailstoneError): void {
    const cause = EXIT_CAUSES.find((c) => c.code.test(error.code));
    if (cause === undefined || !this.explained(slot, cause.kinds, this.boundMs)) {
      this.violate('needless-exit', `member ${slot.index} exited with ${error.code} (${error.message}) with no fault that explains it`);
    }
  }

  /** A stripe serves from a new node: under a new claim (one stripe), or the current one (a worker). */
  private adopt(slot: MemberSlot, stripe: number, node: HailstoneNode, newClaim: boolean): void {
    if (newClaim) slot.claims++;
    slot.nodes[stripe] = node;
    // The holder of a node id is the claim: every stripe under it shares the node id's time.
    this.holderOf.set(node, `m${slot.index}.${slot.incarnation} claim ${slot.claims} (node id ${node.nodeId})`);
    this.note(`m${slot.index} serving`, `stripe ${stripe} node id ${node.nodeId}`);
  }

  private kill(slot: MemberSlot, why: string): void {
    const process = slot.process;
    if (process === undefined || !process.alive) return;
    process.alive = false;
    slot.nodes = [];
    slot.processes.kill(slot.pid);
    this.note(`m${slot.index} killed`, why);
  }

  /** Every member's clients ask for a few ids every CLIENT_EVERY_MS (at the member's process: late if it is paused). */
  private clients(): void {
    const tick = () => {
      if (this.scheduler.now >= this.endAt) return;
      for (const slot of this.slots) {
        const process = slot.process;
        if (process === undefined) continue;
        const count = 1 + Math.floor(this.random() * 3);
        const askedAt = this.scheduler.now;
        if (!process.alive) {
          this.ask(slot, undefined, count, askedAt);
          continue;
        }
        // A request reaches one stripe (the kernel spreads them over the workers' sockets).
        const stripe = Math.floor(this.random() * this.stripes);
        process.deliver(() => this.ask(slot, slot.nodes[stripe], count, askedAt));
      }
      this.scheduler.after(this.clientEveryMs, tick);
    };
    this.scheduler.at(this.clientEveryMs, tick);
  }

  private ask(slot: MemberSlot, node: HailstoneNode | undefined, count: number, askedAt: number): void {
    this.requests++;
    slot.asked++;
    let issued: bigint[] = [];
    let refusal: string | undefined;
    if (node === undefined) refusal = slot.process?.alive ? 'claiming' : 'down';
    else {
      // As the server asks: a refusal is a status, not an exception.
      const written = node.tryFill(this.buffer, 0, count);
      if (written > 0) issued = readIds(this.buffer, 0, written);
      else refusal = written < 0 ? node.refusalReason(written) : 'no ids';
    }
    for (const id of issued) this.check(slot, node!, id);
    if (issued.length > 0) {
      slot.served++;
      slot.lastServedAt = this.scheduler.now;
      if (slot.firstServedAt < 0) slot.firstServedAt = this.scheduler.now;
      this.note(`m${slot.index} ids`, `${issued.length} ${issued[0]}`);
    } else {
      this.refusals++;
      this.refusedBy[refusal ?? '?'] = (this.refusedBy[refusal ?? '?'] ?? 0) + 1;
      if (!this.excused(slot.index, askedAt) && !this.excused(slot.index, this.scheduler.now)) {
        this.violate('refusal-without-fault', `member ${slot.index} refused (${refusal}) at ${this.scheduler.now} ms with no fault active and past its start's ${this.boundMs} ms`);
      }
    }
  }

  private holderIndex(holder: string): number {
    let index = this.holderIndexes.get(holder);
    if (index === undefined) {
      index = this.holders.push(holder) - 1;
      this.holderIndexes.set(holder, index);
    }
    return index;
  }

  /** What the checks keep per node object: one lookup per id. */
  private recordOf(slot: MemberSlot, node: HailstoneNode): NodeRecord {
    let record = this.records.get(node);
    if (record === undefined) {
      const holder = this.holderOf.get(node) ?? `m${slot.index}?`;
      const tenures = this.tenures.get(node.nodeId) ?? [];
      this.tenures.set(node.nodeId, tenures);
      // Every stripe under one claim shares the holder's tenure of the node id.
      let tenure = tenures.find((t) => t.holder === holder);
      if (tenure === undefined) {
        tenure = { holder, min: Infinity, max: -Infinity };
        tenures.push(tenure);
      }
      record = { holder, holderIndex: this.holderIndex(holder), lastId: undefined, tenure, tenures };
      this.records.set(node, record);
    }
    return record;
  }

  private check(slot: MemberSlot, node: HailstoneNode, id: bigint): void {
    this.ids++;
    const record = this.recordOf(slot, node);
    const { holder } = record;
    if (this.issuedCount === this.issuedIds.length) {
      const ids = new BigUint64Array(2 * this.issuedCount);
      ids.set(this.issuedIds);
      this.issuedIds = ids;
      const by = new Float64Array(2 * this.issuedCount);
      by.set(this.issuedBy);
      this.issuedBy = by;
    }
    this.issuedIds[this.issuedCount] = id;
    // Who issued it and when, in one number (no object or string per id).
    this.issuedBy[this.issuedCount++] = record.holderIndex * ISSUED_AT_SPAN + Math.floor(this.scheduler.now);
    if (record.lastId !== undefined && id <= record.lastId) this.violate('increasing', `${holder} issued ${id} after ${record.lastId}`);
    record.lastId = id;
    // The time tick, straight from the bits (it orders as the timestamp does).
    const timestamp = Number(id >> this.tickShift);
    const own = record.tenure;
    if (timestamp <= own.max && timestamp >= own.min) return; // the range did not grow: nothing new can overlap
    own.min = Math.min(own.min, timestamp);
    own.max = Math.max(own.max, timestamp);
    for (const other of record.tenures) {
      if (other !== own && other.min <= other.max && !(own.max < other.min || other.max < own.min)) {
        this.violate('one-holder', `node id ${node.nodeId}: ${holder} issued ids in ${own.min}..${own.max}, overlapping ${other.holder}'s ${other.min}..${other.max}`);
      }
    }
  }


  /** No id issued twice in the whole run: a repeat is named by both of its issues. */
  private checkUnique(): void {
    const repeat = firstRepeat(this.issuedIds.subarray(0, this.issuedCount));
    if (repeat === undefined) return;
    const [first, second] = repeat;
    const who = (i: number) => `${this.holders[Math.floor(this.issuedBy[i]! / ISSUED_AT_SPAN)]} at ${this.issuedBy[i]! % ISSUED_AT_SPAN} ms`;
    this.violation = { at: this.issuedBy[second]! % ISSUED_AT_SPAN, invariant: 'unique', message: `id ${this.issuedIds[second]} issued by ${who(second)} was issued before by ${who(first)}` };
    this.note('VIOLATION', `unique: ${this.violation.message}`);
  }

  /** Every member served in the run's last stretch, which no fault explains (a refusal there is a violation already). */
  private checkLiveness(): void {
    for (const slot of this.slots) {
      if (slot.lastServedAt < this.endAt - LIVENESS_TAIL_MS) {
        this.violate('liveness', `member ${slot.index} served nothing in the last ${LIVENESS_TAIL_MS} ms, ${this.boundMs} ms after the faults stopped (last id at ${slot.lastServedAt} ms)`);
      }
    }
  }

  private inject(fault: Fault): void {
    const { kind, member, ms } = fault;
    const now = this.scheduler.now;
    const slot = member === undefined ? undefined : this.slots[member]!;
    this.note('fault', `${kind}${member === undefined ? '' : ` m${member}`} ${ms}ms${kind === 'reply-loss' || kind === 'deposed-leader' ? ` p=${fault.chance.toFixed(2)}` : ''}`);
    const until = now + ms + this.boundMs;
    this.hits.push({ kind, member, from: now, until: now + ms });
    switch (kind) {
      case 'crash':
        this.kill(slot!, 'SIGKILL');
        this.scheduler.after(ms, () => this.startProcess(slot!));
        this.excuse(slot!.index, now, until);
        break;
      case 'pause': {
        const process = slot!.process;
        if (process?.alive) process.pausedUntil = Math.max(process.pausedUntil, now + ms);
        this.excuse(slot!.index, now, until);
        break;
      }
      case 'clock-back':
        slot!.clock.offsetMs -= ms;
        this.excuse(slot!.index, now, until);
        break;
      case 'clock-ahead':
        slot!.clock.offsetMs += ms;
        this.excuse(slot!.index, now, until);
        break;
      case 'partition':
        this.net.partitioned.add(slot!.index);
        this.scheduler.after(ms, () => this.net.partitioned.delete(slot!.index));
        this.excuse(slot!.index, now, until);
        break;
      case 'delay':
        this.net.extraDelayMs = 200 + Math.floor(fault.chance * 2000);
        this.scheduler.after(ms, () => (this.net.extraDelayMs = 0));
        this.excuse(-1, now, until);
        break;
      case 'reply-loss':
        this.net.lossChance = fault.chance;
        this.scheduler.after(ms, () => (this.net.lossChance = 0));
        this.excuse(-1, now, until);
        break;
      case 'deposed-leader':
        this.net.deposedChance = fault.chance;
        this.scheduler.after(ms, () => (this.net.deposedChance = 0));
        this.excuse(-1, now, until);
        break;
      case 'election':
        this.net.leaderUntil = Math.max(this.net.leaderUntil, now + ms);
        this.scheduler.after(ms, () => this.etcd.elected());
        this.excuse(-1, now, until);
        break;
      case 'whole-restart': {
        for (const s of this.slots) {
          this.kill(s, 'whole-system restart');
          // A power loss: each disk keeps only what was synced.
          s.disk?.crash();
        }
        this.net.down = true;
        this.scheduler.after(ms, () => {
          this.net.down = false;
          this.etcd.elected();
          this.note('coordinator', 'back, with a new leader');
        });
        // The servers come back in any order, some before the coordinator.
        for (const s of this.slots) this.scheduler.after(Math.floor(this.random() * (ms + 5000)), () => this.startProcess(s));
        this.excuse(-1, now, now + ms + 5000 + this.boundMs);
        break;
      }
    }
  }
}

export async function simulate(options: SimOptions): Promise<SimReport> {
  return new Simulation(options).run();
}
