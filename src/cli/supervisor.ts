// The primary process of `hailstone serve --workers N`: forks the workers, announces the
// server once all of them serve, restarts a worker that dies, and always ends the whole
// tree with it.
//
//  - A worker that fails before the server is announced (STATE_LOCKED, CLOCK_FAR_BEHIND,
//    PORT_IN_USE, …) would fail the same way again: every worker is stopped and the
//    server exits 1 with that worker's one-line error.
//  - A worker that dies later is restarted with the same stripe (its reservation makes
//    that safe), after a backoff that doubles with each recent crash. One that crashes
//    MAX_CRASHES times within CRASH_WINDOW_MS — or whose restarts keep failing — stops the
//    server with exit 1, so systemd or Kubernetes sees it.
//  - SIGTERM or SIGINT stops every worker (with SIGTERM); one that has not exited after
//    STOP_GRACE_MS is killed.
//
// One server per port: before any worker starts, the primary takes the port's guard and
// proves nobody is bound to it (src/server/port-guard.ts), picking a free port for
// --port 0. With dgram the workers then share one socket (node:cluster hands them the
// primary's); with the native transport each binds that port itself with SO_REUSEPORT,
// a group no other server can join while this primary holds the guard.

import cluster, { type Worker } from 'node:cluster';
import type { Logger } from 'pino';
import type { NodeSnapshot, WorkerSnapshot } from '../server/health.js';
import { mergeHttpStats } from '../server/http-metrics.js';
import { resolveTransport } from '../server/select-transport.js';
import { hostPort, resolveHost } from '../address.js';
import { type PortGuard, holdPort, reservePortForWorkers } from '../server/port-guard.js';
import type { HailstoneError } from '../errors.js';
import type { ClaimRef } from '../fleet/etcd-store.js';
import type { FleetMember } from '../fleet/member.js';
import { sendFailure } from '../fleet/node-reservation.js';
import { type Failure, ReportedFailure } from './failure.js';
import { type ServeConfig, httpOnlyReadyLine, makeLogger, onStopSignal, readyLine, say, startMetrics, warnAboutKeyFiles } from './run-server.js';
import { type FromWorker, type ToWorker, sentClaim, workerEnv } from './worker-messages.js';

const MAX_CRASHES = 5;
const CRASH_WINDOW_MS = 60_000;
const FIRST_BACKOFF_MS = 100;
const MAX_BACKOFF_MS = 5000;
const STOP_GRACE_MS = 10_000;
const SNAPSHOT_TIMEOUT_MS = 1000;

interface Slot {
  worker: Worker;
  listening: boolean;
  /** Stopped on purpose to start again under a new fleet claim: not a crash. */
  replacing?: boolean;
  /** What the worker said when it failed, if it did. */
  failure: Failure | undefined;
}

function describeExit(code: number | null, signal: string | null): string {
  return signal !== null ? `killed by ${signal}` : `exit code ${code}`;
}

class Supervisor {
  private readonly slots = new Map<number, Slot>();
  private readonly crashes = new Map<number, number[]>();
  private readonly restartTimers = new Map<number, NodeJS.Timeout>();
  /** Fleet mode: workers that stopped because the claim went away, to start under the next one. */
  private readonly awaitingClaim = new Set<number>();
  private readonly pendingSnapshots = new Map<number, (s: WorkerSnapshot | undefined) => void>();
  private nextSnapshot = 0;
  private restarts = 0;
  private announced = false;
  private httpAnnounced = false;
  private httpGuard: PortGuard | undefined;
  private stopping = false;
  private outcome: Failure | undefined;
  private killTimer: NodeJS.Timeout | undefined;
  private finish: () => void = () => undefined;
  readonly finished = new Promise<void>((resolve) => {
    this.finish = resolve;
  });

  private readonly config: ServeConfig;
  private readonly logger: Logger;
  private readonly transport: 'native' | 'dgram';
  /** The port every worker binds, reserved by the primary. */
  private readonly workerPort: number;
  /** Fleet mode: the claim every worker writes under (the primary holds it). */
  private readonly fleet: FleetMember | undefined;

  constructor(init: { config: ServeConfig; logger: Logger; transport: 'native' | 'dgram'; workerPort: number; fleet: FleetMember | undefined }) {
    ({ config: this.config, logger: this.logger, transport: this.transport, workerPort: this.workerPort, fleet: this.fleet } = init);
  }

  /** The UDP address the workers serve on, as far as it is known ("" with --no-udp: none). */
  get udpAddress(): string {
    return this.config.udp ? hostPort(this.config.host, this.workerPort) : '';
  }

  /** Fleet mode: the claim is lost; every worker stops issuing at once. */
  fence(reason: string): void {
    for (const slot of this.slots.values()) this.send(slot.worker, { type: 'fence', reason });
  }

  /**
   * Fleet mode: a new claim (perhaps of another node id). Serving workers switch to it on the
   * sockets they hold, so the port keeps answering (UNAVAILABLE until each has stored its
   * first reservation under the new claim); the others are started again under it.
   */
  adoptAll(claim: ClaimRef): void {
    if (this.stopping) return;
    for (const index of this.awaitingClaim) this.fork(index);
    this.awaitingClaim.clear();
    const message: ToWorker = { type: 'claim', claim: sentClaim(claim) };
    for (const slot of this.slots.values()) {
      if (slot.listening && this.send(slot.worker, message)) continue;
      slot.replacing = true;
      slot.worker.process.kill('SIGTERM');
    }
  }

  /** Why the server ended, or undefined when it was told to stop. */
  get failure(): Failure | undefined {
    return this.outcome;
  }

  get restartCount(): number {
    return this.restarts;
  }

  start(): void {
    for (let i = 0; i < this.config.workers; i++) this.fork(i);
  }

  /** Stops every worker; `failure` is why, or undefined for a requested stop. */
  stop(failure?: Failure): void {
    if (this.stopping) return;
    this.stopping = true;
    this.outcome = failure;
    for (const timer of this.restartTimers.values()) clearTimeout(timer);
    this.restartTimers.clear();
    // SIGTERM, not an IPC message: a worker still loading has no listener yet and would
    // miss a message, while a signal either runs its stop handler or ends it outright.
    for (const slot of this.slots.values()) slot.worker.process.kill('SIGTERM');
    this.killTimer = setTimeout(() => {
      for (const [index, slot] of this.slots) {
        this.logger.error({ worker: index, workerPid: slot.worker.process.pid }, `worker ${index} did not stop within ${STOP_GRACE_MS} ms; killing it`);
        slot.worker.process.kill('SIGKILL');
      }
    }, STOP_GRACE_MS);
    this.killTimer.unref();
    this.maybeFinished();
  }

  /** The whole node's view for /metrics and /healthz: ask every live worker, wait at most 1 s. */
  async snapshot(): Promise<NodeSnapshot> {
    const answers = await Promise.all(
      [...this.slots.values()].map(
        (slot) =>
          new Promise<WorkerSnapshot | undefined>((resolve) => {
            const id = this.nextSnapshot++;
            const timer = setTimeout(() => {
              this.pendingSnapshots.delete(id);
              resolve(undefined);
            }, SNAPSHOT_TIMEOUT_MS);
            this.pendingSnapshots.set(id, (s) => {
              clearTimeout(timer);
              this.pendingSnapshots.delete(id);
              resolve(s);
            });
            if (!this.send(slot.worker, { type: 'snapshot', id })) this.pendingSnapshots.get(id)?.(undefined);
          }),
      ),
    );
    const workers = answers.filter((a): a is WorkerSnapshot => a !== undefined);
    const http = workers.flatMap((w) => (w.http === undefined ? [] : [w.http]));
    return { workers, workerRestarts: this.restarts, expectedWorkers: this.config.workers, ...(http.length === 0 ? {} : { http: mergeHttpStats(http) }) };
  }

  private fork(index: number): void {
    const worker = cluster.fork(workerEnv({ index, transport: this.transport, host: this.config.host, port: this.workerPort, claim: this.fleet?.claimRef() }));
    const slot: Slot = { worker, listening: false, failure: undefined };
    this.slots.set(index, slot);
    // A send to a worker that just died fails with EPIPE: its 'exit' event tells the rest.
    worker.on('error', (error) => this.logger.debug({ worker: index, err: String(error) }, 'worker channel error'));
    worker.on('message', (m: FromWorker) => this.onMessage(index, slot, m));
    worker.on('exit', (code, signal) => this.onExit(index, slot, code, signal));
  }

  private send(worker: Worker, message: ToWorker): boolean {
    if (!worker.isConnected()) return false;
    try {
      worker.send(message, undefined, () => undefined);
      return true;
    } catch {
      return false;
    }
  }

  private onMessage(index: number, slot: Slot, m: FromWorker): void {
    switch (m?.type) {
      case 'snapshot':
        return this.pendingSnapshots.get(m.id)?.(m.snapshot);
      case 'failed':
        slot.failure = m.failure;
        return;
      case 'claim-lost':
        // A worker's reservation write found the claim gone (deleted by hand, say): fence and claim again.
        return this.fleet?.loseClaim(m.reason, m.createRevision);
      case 'listening':
        return this.onListening(index, slot, m);
      case 'http-listening':
        // Every worker listens on the one HTTP port (node:cluster hands connections round
        // robin); the first to say so names it, once, and the primary guards it for all of them.
        if (!this.httpAnnounced) {
          this.httpAnnounced = true;
          void this.guardHttp(m.port).then((held) => {
            if (!held) return;
            this.logger.info({ http: m.url }, 'ids served over HTTP by every worker');
            say(`hailstone listening on ${m.url}\n`);
          });
        }
        return;
      case 'reservation':
        return this.answerReservation(slot, m);
    }
  }

  /** The HTTP port's guard, held for every worker; false (and the server stopping) when another server holds it. */
  private async guardHttp(port: number): Promise<boolean> {
    try {
      this.httpGuard = await holdPort(port, { address: hostPort(this.config.http?.host ?? this.config.host, port), nodeId: this.config.nodeId, workers: this.config.workers }, 'http');
      if (this.stopping) void this.httpGuard.close();
      return true;
    } catch (error) {
      const e = error as HailstoneError;
      this.stop({ code: e.code ?? 'HTTP_PORT_IN_USE', message: e.message });
      return false;
    }
  }

  /** Releases the HTTP port's guard (once every worker has stopped). */
  async releaseHttp(): Promise<void> {
    await this.httpGuard?.close();
  }

  /** A worker's node asks for its floor or an R: the node's one reservation, held here, answers. */
  private answerReservation(slot: Slot, m: Extract<FromWorker, { type: 'reservation' }>): void {
    const reply = (answer: Omit<Extract<ToWorker, { type: 'reservation' }>, 'type' | 'id'>) => void this.send(slot.worker, { type: 'reservation', id: m.id, ...answer });
    const link = this.fleet?.reservationOf(m.createRevision);
    if (link === undefined) {
      return reply({ failure: { lost: true, message: `the claim with revision ${m.createRevision} is no longer this server's: it claimed again` } });
    }
    const work = m.until === undefined ? link.open().then((floor) => ({ floor })) : link.reserve(m.until).then((reserved) => ({ reserved }));
    work.then(
      (answer) => reply(answer),
      (error: unknown) => reply({ failure: sendFailure(link, error) }),
    );
  }

  private onListening(index: number, slot: Slot, m: Extract<FromWorker, { type: 'listening' }>): void {
    slot.listening = true;
    this.logger.info({ worker: index, workerPid: slot.worker.process.pid }, `worker ${index} is serving`);
    if (this.stopping) return;
    const serving = [...this.slots.values()].filter((s) => s.listening).length;
    if (!this.announced && serving === this.config.workers) {
      this.announced = true;
      const nodeId = this.fleet?.stats().nodeId ?? this.config.nodeId;
      say(this.config.udp ? readyLine(this.config, m.host, m.port, m.transport, nodeId) : httpOnlyReadyLine(this.config, nodeId));
      void this.fleet?.announce().catch(() => undefined);
    }
  }

  private onExit(index: number, slot: Slot, code: number | null, signal: string | null): void {
    if (this.slots.get(index) === slot) this.slots.delete(index);
    if (this.stopping) return this.maybeFinished();
    if (slot.replacing) {
      this.fork(index);
      return;
    }
    const how = describeExit(code, signal);
    if (this.fleet !== undefined && slot.failure?.code === 'OWNERSHIP_LOST') {
      // Its claim went away under it (the primary is claiming again): it starts under the
      // next claim, with the others.
      this.awaitingClaim.add(index);
      return;
    }
    if (!this.announced) {
      // It failed to start (or was killed while starting): starting again would fail the same way.
      return this.stop(slot.failure ?? { code: 'WORKER_FAILED', message: `worker ${index} ${how} before it was serving` });
    }
    const now = Date.now();
    const recent = (this.crashes.get(index) ?? []).filter((t) => now - t < CRASH_WINDOW_MS);
    recent.push(now);
    this.crashes.set(index, recent);
    if (recent.length >= MAX_CRASHES) {
      const seconds = Math.ceil((now - recent[0]!) / 1000);
      return this.stop(
        slot.failure !== undefined
          ? { code: slot.failure.code, message: `${slot.failure.message} (worker ${index} failed ${recent.length} times in ${seconds} s; giving up)` }
          : { code: 'WORKER_CRASH_LOOP', message: `worker ${index} crashed ${recent.length} times in ${seconds} s (last: ${how}); giving up so the supervisor sees it` },
      );
    }
    const delay = Math.min(MAX_BACKOFF_MS, FIRST_BACKOFF_MS * 2 ** (recent.length - 1));
    this.restarts++;
    this.logger.error(
      { worker: index, code, signal, restartInMs: delay, ...(slot.failure === undefined ? {} : { failure: slot.failure }) },
      `worker ${index} exited (${slot.failure === undefined ? how : `${slot.failure.code}: ${slot.failure.message}`}); restarting it in ${delay} ms`,
    );
    this.restartTimers.set(
      index,
      setTimeout(() => {
        this.restartTimers.delete(index);
        if (!this.stopping) this.fork(index);
      }, delay),
    );
  }

  private maybeFinished(): void {
    if (this.slots.size > 0) return;
    clearTimeout(this.killTimer);
    this.finish();
  }
}

export async function servePrimary(config: ServeConfig): Promise<number> {
  const logger = makeLogger(config);
  warnAboutKeyFiles(config, logger);
  // Decided once, here: the fallback (if any) is logged once for the whole node.
  const transport = config.udp ? resolveTransport(config.transport, logger) : 'dgram';
  // One server per port, before anything else happens: the port is guarded and free
  // before a node id is claimed or a worker starts. (--no-udp: no UDP port; the HTTP
  // port's guard is taken once the workers listen on it.)
  const host = await resolveHost(config.host);
  const guard = config.udp ? await reservePortForWorkers(host, config.port, { nodeId: config.nodeId, workers: config.workers }) : undefined;
  // Fleet mode: one claim for the whole server, held here; the workers write their stripes under it.
  // Loaded only in fleet mode: etcd's client is large.
  const fleet: FleetMember | undefined =
    config.etcd === undefined
      ? undefined
      : new (await import('../fleet/member.js')).FleetMember(
          {
            etcd: config.etcd,
            cluster: config.cluster,
            ...(config.advertise === undefined ? {} : { advertise: config.advertise }),
            ...(config.nodeId === undefined ? {} : { nodeId: config.nodeId }),
            claimWaitMs: config.claimWaitMs,
            leaseTtlS: config.leaseTtlS,
            coordinatorWaitMs: config.etcdWaitMs,
            // The node's one reservation is written here for every worker: with their lead,
            // reservation and clock, or it could reach past what a worker may start under.
            maxLeadMs: config.maxLeadMs,
            ...(config.reservationMs === undefined ? {} : { reservationMs: config.reservationMs }),
            clockSkewMs: config.clockSkewMs,
          },
          { logger, udp: () => supervisor.udpAddress, claimOnly: true, onFence: (reason) => supervisor.fence(reason), onClaim: (claim) => supervisor.adoptAll(claim) },
        );
  const supervisor: Supervisor = new Supervisor({ config: { ...config, host }, logger, transport, workerPort: guard?.port ?? 0, fleet });
  const metrics = await startMetrics(config, async () => ({ ...(await supervisor.snapshot()), ...(fleet === undefined ? {} : { fleet: fleet.stats() }) }), logger);
  let started = false;
  let stopRequested = false;
  onStopSignal(() => {
    stopRequested = true;
    if (!started) {
      // Still claiming a node id (perhaps waiting for its holder): stop claiming.
      logger.info({}, 'stopping while claiming a node id');
      void fleet?.close();
      return;
    }
    logger.info({}, 'stopping: telling the workers');
    supervisor.stop();
  });
  if (fleet !== undefined) {
    try {
      await fleet.start();
    } catch (error) {
      await metrics?.close();
      await fleet.close().catch(() => undefined);
      if (stopRequested) {
        say('hailstone stopped\n');
        return 0;
      }
      throw error;
    }
  }
  started = true;
  supervisor.start();
  // A given node id taken by another instance while fenced: stop every worker, exit 1.
  void fleet?.gaveUp.then((error) => supervisor.stop({ code: error.code, message: error.message }));
  await supervisor.finished;
  await fleet?.close();
  await metrics?.close();
  await guard?.close();
  await supervisor.releaseHttp();
  if (supervisor.failure !== undefined) throw new ReportedFailure(supervisor.failure);
  logger.info({ workerRestarts: supervisor.restartCount }, 'stopped');
  say('hailstone stopped\n');
  return 0;
}
