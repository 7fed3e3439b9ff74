// A whole fleet starting at once against a real etcd, in one process: N claimants, each with
// fleet mode's own claim (claimNodeId), lease, node reservation (NodeReservation over
// EtcdStore) and W worker stripes (real nodes, renewing on their own timers). It measures
// what etcd says it served (etcd-metrics.ts) while they claim, while they all renew, and —
// with `restart` — after a power loss of the whole fleet: every claim and node dropped at
// once (nothing released, as when the machines lose power), etcd keeping its data, and N
// new claimants starting: each node id's new ids must lie above its old ones, and no two
// claimants may hold one node id.
//
// Used by `npm run bench:fleet-scale` (1024 claimants) and by the fleet scale test (256).

import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import type { Etcd3 } from 'etcd3';
import { HailstoneError } from '../src/errors.js';
import type { HailstoneNode } from '../src/node/node.js';
import { type Claim, claimNodeId } from '../src/fleet/claim.js';
import { claimsPrefix, parseReservation, reservationsRoot } from '../src/fleet/etcd.js';
import { EtcdCoordinator, connectEtcd } from '../src/fleet/etcd-adapter.js';
import { systemRuntime } from '../src/system-runtime.js';
import { EtcdStore, WHOLE_NODE, claimRefOf } from '../src/fleet/etcd-store.js';
import { openFleetNode } from '../src/fleet/fleet-node.js';
import { holderInstance } from '../src/fleet/holder.js';
import { claimAgainCures } from '../src/fleet/claim-again.js';
import { NodeReservation } from '../src/fleet/node-reservation.js';
import type { NodeLogger } from '../src/logger.js';
import { type EtcdCounters, latencyQuantile, readEtcdCounters, requestsBetween } from './etcd-metrics.js';

export interface FleetScaleOptions {
  endpoints: string[];
  /** etcd's /metrics URL of every member. */
  metrics: string[];
  cluster: string;
  claimants: number;
  /**
   * Node ids the claimants may take (default 1024, the layout's): as many as claimants, and
   * after a power loss every new claimant must reuse a dead one's id.
   */
  nodeIds?: number;
  /** Worker stripes per node (each a node of its own, reserving through the node's one key). */
  stripes: number;
  /** etcd connections shared by the claimants (one process of a real fleet has one). */
  connections: number;
  leaseTtlS: number;
  /** How long the steady state is measured. */
  steadyMs: number;
  /** Power loss of the whole fleet, then N new claimants. */
  restart: boolean;
  /** Ids each node issues before the power loss, and after. */
  idsPerNode?: number;
  logger: NodeLogger;
}

export interface ClaimPhase {
  claimants: number;
  /** ms from the start until each claimant held a node id. */
  claimMs: number[];
  /** ms from the start until each claimant's node had stored its first reservation (it then serves after its first-start wait). */
  openMs: number[];
  /** etcd requests per claimant: claiming alone, and claiming plus opening the node. */
  claimRequestsPerClaimant: number;
  startRequestsPerClaimant: number;
  /** Claimants that failed, by error code. */
  failures: Record<string, number>;
  /** Claims lost before their node opened and claimed again, as a server does. */
  reclaims: number;
  /** Claimants that held an id no other held. */
  distinctNodeIds: number;
}

export interface FleetScaleResult {
  start: ClaimPhase;
  steady:
    | {
        seconds: number;
        nodes: number;
        stripes: number;
        requestsPerSec: number;
        perNodePerSec: number;
        p99Ms: number;
        writesPerSec: number;
        /** How late this process's timers ran at worst in the window (the nodes renew on them). */
        eventLoopLagMaxMs: number;
        /**
         * The largest renewal margin a node kept at the window's end: twice its slowest recent
         * write plus timer lag. Past lead − reservation, renewals come more often than once a
         * reservation (every lead − margin).
         */
        renewalMarginMaxMs: number;
      }
    | undefined;
  restart:
    | (ClaimPhase & {
        /** ms from the power loss until every new claimant held a node id (the old leases ran out first). */
        allClaimedAfterMs: number;
        /** Node ids whose new floor lay at or above the old stored R, and whose new ids all lay above the old ones. */
        nodeIdsAbove: number;
        /** Nodes fenced (their claim lost) before they issued their ids: before the power loss, and after it. */
        fencedBefore: number;
        fencedAfter: number;
        violations: string[];
        idsChecked: number;
      })
    | undefined;
}

interface Member {
  claim: Claim;
  reservation: NodeReservation;
  nodes: HailstoneNode[];
  /** The floor its first node started from. */
  floor: number | undefined;
}

const quiet = { info: () => undefined, debug: () => undefined } as const;

/** Why a claimant failed: its code (documented codes only are expected), or the error's name. */
function codeOf(error: unknown): string {
  return error instanceof HailstoneError ? error.code : `raw ${(error as Error)?.name ?? typeof error}: ${(error as Error)?.message ?? String(error)}`;
}

/**
 * `count` ids, or undefined when the node has stopped for good because its claim was lost
 * (fenced: a keepalive starved past the lease on an overloaded machine) — counted, not a
 * failure of the check: a fenced node issues nothing more.
 */
async function issueUnlessFenced(node: HailstoneNode, count: number): Promise<bigint[] | undefined> {
  try {
    return await issue(node, count);
  } catch (error) {
    if (error instanceof HailstoneError && error.code === 'OWNERSHIP_LOST') return undefined;
    throw error;
  }
}

async function issue(node: HailstoneNode, count: number): Promise<bigint[]> {
  const ids: bigint[] = [];
  const until = Date.now() + 20_000;
  while (ids.length < count) {
    try {
      ids.push(node.nextId());
    } catch (error) {
      if (!(error instanceof HailstoneError) || Date.now() > until) throw error;
      await new Promise((r) => setTimeout(r, Math.min(error.retryAfterMs ?? 20, 200)));
    }
  }
  return ids;
}

export async function runFleetScale(options: FleetScaleOptions): Promise<FleetScaleResult> {
  const logger: NodeLogger = { ...options.logger, ...quiet };
  const clients: Etcd3[] = Array.from({ length: options.connections }, () => connectEtcd({ endpoints: options.endpoints }));
  const coordinators = clients.map((client) => new EtcdCoordinator(client, options.endpoints));
  const metrics = () => readEtcdCounters(options.metrics);
  const generation = async (gen: number, t0 = performance.now()): Promise<{ phase: ClaimPhase; members: Member[] }> => {
    const before = await metrics();
    let claimedAt: Promise<EtcdCounters> | undefined;
    let claimed = 0;
    const failures: Record<string, number> = {};
    let reclaims = 0;
    const claimMs: number[] = [];
    const openMs: number[] = [];
    const members: Member[] = [];
    let onClaimed: () => void = () => undefined;
    const allClaimed = new Promise<void>((resolve) => {
      onClaimed = () => {
        claimed++;
        if (claimed === options.claimants) resolve();
      };
    });
    const start = async (i: number): Promise<void> => {
      const instance = `scale-${gen}-${i}`;
      for (let round = 0; ; round++) {
        let claim: Claim;
        try {
          claim = await claimNodeId({
            coordinator: coordinators[i % coordinators.length]!,
            runtime: systemRuntime,
            cluster: options.cluster,
            nodeId: undefined,
            maxNodeId: (options.nodeIds ?? 1024) - 1,
            leaseTtlS: options.leaseTtlS,
            coordinatorWaitMs: 60_000,
            info: { instance, host: 'scale', udp: `127.0.0.1:${10000 + i}`, pid: process.pid, version: 'bench', startedAt: new Date().toISOString() },
            logger,
            reservationLimit: () => Date.now() + 2000,
            // As a server does (member.ts): after a power loss every id is held until the dead leases run out.
            freeWaitMs: options.leaseTtlS * 1000 + 5000,
          });
        } catch (error) {
          failures[codeOf(error)] = (failures[codeOf(error)] ?? 0) + 1;
          if (round === 0) onClaimed();
          return;
        }
        if (round === 0) {
          claimMs.push(performance.now() - t0);
          onClaimed();
          await allClaimed;
          // Opened once every claimant holds its id, so the two phases' requests are told apart.
          await (claimedAt ??= metrics());
        }
        const store = new EtcdStore({ coordinator: coordinators[i % coordinators.length]!, runtime: systemRuntime, cluster: options.cluster, claim: claimRefOf(claim), worker: WHOLE_NODE });
        const reservation = new NodeReservation(store, Date.now, 2000);
        const member: Member = { claim, reservation, nodes: [], floor: undefined };
        try {
          member.floor = (await reservation.open()).floor;
          for (let w = 0; w < options.stripes; w++) {
            member.nodes.push(await openFleetNode({ cluster: options.cluster, options: { worker: { index: w, count: options.stripes }, maxLeadMs: 2000, reservationMs: 1000 }, logger, link: reservation }, claimRefOf(claim)));
          }
          openMs.push(performance.now() - t0);
          members.push(member);
          return;
        } catch (error) {
          for (const node of member.nodes) await node.close().catch(() => undefined);
          await claim.release().catch(() => undefined);
          // As a server does: a claim lost before its node opened (its lease ran out while the
          // fleet was still claiming) is claimed again.
          if (claimAgainCures(error) && round < 3) {
            reclaims++;
            continue;
          }
          failures[`open: ${codeOf(error)}`] = (failures[`open: ${codeOf(error)}`] ?? 0) + 1;
          return;
        }
      }
    };
    await Promise.all(Array.from({ length: options.claimants }, (_, i) => start(i)));
    const after = await metrics();
    const claimRequests = claimedAt === undefined ? NaN : requestsBetween(before, await claimedAt);
    const held = members.map((m) => m.claim.nodeId);
    return {
      members,
      phase: {
        claimants: options.claimants,
        claimMs,
        openMs,
        claimRequestsPerClaimant: claimRequests / options.claimants,
        startRequestsPerClaimant: requestsBetween(before, after) / options.claimants,
        failures,
        reclaims,
        distinctNodeIds: new Set(held).size,
      },
    };
  };

  const first = await generation(1);
  const result: FleetScaleResult = { start: first.phase, steady: undefined, restart: undefined };
  try {
    // Steady state: every node renews on its own timers.
    await new Promise((r) => setTimeout(r, 3000));
    const writesBefore = first.members.reduce((s, m) => s + m.reservation.writes, 0);
    const a = await metrics();
    const t = performance.now();
    const lag = monitorEventLoopDelay({ resolution: 10 });
    lag.enable();
    await new Promise((r) => setTimeout(r, options.steadyMs));
    lag.disable();
    const b = await metrics();
    const seconds = (performance.now() - t) / 1000;
    const writes = first.members.reduce((s, m) => s + m.reservation.writes, 0) - writesBefore;
    const requestsPerSec = requestsBetween(a, b) / seconds;
    result.steady = {
      seconds,
      nodes: first.members.length,
      stripes: options.stripes,
      requestsPerSec,
      perNodePerSec: requestsPerSec / first.members.length,
      p99Ms: latencyQuantile(a, b, 0.99) * 1000,
      writesPerSec: writes / seconds,
      eventLoopLagMaxMs: lag.max / 1e6,
      renewalMarginMaxMs: Math.max(0, ...first.members.flatMap((m) => m.nodes.map((n) => n.status().renewalMarginMs))),
    };
    if (options.restart) result.restart = await powerLoss(options, clients, first.members, (lostAt) => generation(2, lostAt));
  } finally {
    for (const m of first.members) {
      for (const node of m.nodes) await node.close().catch(() => undefined);
      await m.claim.release().catch(() => undefined);
    }
    for (const client of clients) client.close();
  }
  return result;
}

/** Drops the whole fleet at once (nothing released), starts a new one, and checks every node id's ids rose. */
async function powerLoss(
  options: FleetScaleOptions,
  clients: Etcd3[],
  old: Member[],
  next: (lostAt: number) => Promise<{ phase: ClaimPhase; members: Member[] }>,
): Promise<NonNullable<FleetScaleResult['restart']>> {
  const perNode = options.idsPerNode ?? 20;
  const oldMax = new Map<number, bigint>();
  let fencedBefore = 0;
  for (const m of old) {
    for (const node of m.nodes) {
      const ids = await issueUnlessFenced(node, perNode);
      if (ids === undefined) fencedBefore++;
      else oldMax.set(m.claim.nodeId, ids.reduce((x, y) => (y > x ? y : x), oldMax.get(m.claim.nodeId) ?? -1n));
    }
  }
  // Power loss: timers stop, nothing is said to etcd — the leases run out by themselves.
  const lostAt = performance.now();
  for (const m of old) {
    for (const node of m.nodes) {
      node.stopIssuing('power loss');
      await node.close();
    }
    m.claim.lose('power loss');
  }
  old.length = 0;
  const etcd = clients[0]!;
  const storedR = new Map<number, number>();
  const root = reservationsRoot(options.cluster);
  for (const [key, value] of Object.entries(await etcd.getAll().prefix(root).strings())) {
    const nodeId = Number(key.slice(root.length).split('/')[0]);
    storedR.set(nodeId, Math.max(storedR.get(nodeId) ?? -Infinity, parseReservation(value) ?? Infinity));
  }
  const second = await next(lostAt);
  const allClaimedAfterMs = second.phase.claimMs.length > 0 ? Math.max(...second.phase.claimMs) : NaN;
  const violations: string[] = [];
  let idsChecked = 0;
  let nodeIdsAbove = 0;
  let fencedAfter = 0;
  try {
    // No two claimants hold one node id: each claim key names the claimant that holds it.
    const claims = await etcd.getAll().prefix(claimsPrefix(options.cluster)).strings();
    for (const m of second.members) {
      const holder = holderInstance(claims[`${claimsPrefix(options.cluster)}${m.claim.nodeId}`] ?? null);
      if (holder === undefined || !holder.startsWith('scale-2-')) violations.push(`node id ${m.claim.nodeId}: the claim key names ${holder}, not a new claimant`);
    }
    if (second.phase.distinctNodeIds !== second.members.length) violations.push(`${second.members.length} claimants hold ${second.phase.distinctNodeIds} distinct node ids`);
    for (const m of second.members) {
      const nodeId = m.claim.nodeId;
      let ok = true;
      const r = storedR.get(nodeId);
      if (r !== undefined && !((m.floor ?? -Infinity) >= r)) {
        ok = false;
        violations.push(`node id ${nodeId}: the new holder started from ${m.floor}, below the stored R ${r}`);
      }
      let fenced = false;
      for (const node of m.nodes) {
        const ids = await issueUnlessFenced(node, perNode);
        if (ids === undefined) {
          fenced = true;
          continue;
        }
        idsChecked += ids.length;
        const low = ids.reduce((x, y) => (y < x ? y : x));
        const before = oldMax.get(nodeId);
        if (before !== undefined && !(low > before)) {
          ok = false;
          violations.push(`node id ${nodeId}: new id ${low} is not above the old ${before}`);
        }
      }
      if (fenced) fencedAfter++;
      else if (ok) nodeIdsAbove++;
    }
  } finally {
    for (const m of second.members) {
      for (const node of m.nodes) await node.close().catch(() => undefined);
      await m.claim.release().catch(() => undefined);
    }
  }
  return { ...second.phase, allClaimedAfterMs, nodeIdsAbove, fencedBefore, fencedAfter, violations, idsChecked };
}
