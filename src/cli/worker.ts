// One worker process of `hailstone serve --workers N`: serves its stripe of the node,
// reports to the primary over the IPC channel (worker-messages.ts), and stops when told —
// also while it is still starting, and when the primary is gone.

import type { ClaimRef } from '../fleet/etcd-store.js';
import { hostPort } from '../address.js';
import type { HttpIdServer } from '../server/http-server.js';
import { holdWorkerGuard } from '../server/port-guard.js';
import { failureOf } from './failure.js';
import { PrimaryReservations } from './primary-reservation.js';
import { type ServeConfig, ServingProcess, makeLogger, onStopSignal, startHttp } from './run-server.js';
import { type FromWorker, type SentClaim, type ToWorker, readWorkerEnv } from './worker-messages.js';

/** Sends to the primary; `sent` is called once it is sent (or failed). False when the channel is gone. */
function post(message: FromWorker, sent: () => void = () => undefined): boolean {
  if (process.send === undefined || !process.connected) return false;
  try {
    process.send(message, undefined, {}, () => sent());
    return true;
  } catch {
    return false;
  }
}

/** Sends to the primary, ignoring a channel that is already gone. */
function tell(message: FromWorker): Promise<void> {
  return new Promise((resolve) => {
    if (!post(message, resolve)) resolve();
  });
}

export async function serveWorker(config: ServeConfig): Promise<number> {
  // The primary decided the transport (and said why, once), resolved the host and reserved
  // the port for all of them.
  const { index, transport, host, port, claim: given } = readWorkerEnv(config.workers);
  const logger = makeLogger(config, index);
  // A crash is one JSON log line (with the stack as a field), not a stack trace on the
  // server's terminal; the primary restarts the worker and reports a crash loop in one line.
  const crash = (error: unknown) => {
    logger.error({ worker: index, err: (error as Error)?.stack ?? String(error) }, 'worker crashed');
    process.exit(1);
  };
  process.on('uncaughtException', crash);
  process.on('unhandledRejection', crash);
  const proc = new ServingProcess(index);
  // Held while it serves: if its primary dies while this worker is stopped, the next server
  // on the port can say which hailstone worker still has it.
  const workerGuard = config.udp ? await holdWorkerGuard(port, index, process.ppid) : undefined;
  // A write that finds the claim gone tells the primary, which holds the claim.
  // The revision goes with the report: a write under a claim the primary has already
  // replaced must not cost the new claim.
  const underClaim = (claim: SentClaim): ClaimRef => ({ ...claim, lose: (reason) => void tell({ type: 'claim-lost', reason, createRevision: claim.createRevision }) });
  const fleetClaim = given === undefined ? undefined : underClaim(given);
  // The node's reservation is the primary's: a worker asks it, never etcd.
  const reservations = new PrimaryReservations(post);

  let stopNow: () => void = () => undefined;
  const stopped = new Promise<void>((resolve) => {
    stopNow = resolve;
  });
  onStopSignal(stopNow);
  // Without the primary nobody supervises this process or answers for its health: stop.
  process.on('disconnect', () => {
    reservations.failAll('the primary process is gone');
    stopNow();
  });
  process.on('message', (m: ToWorker) => {
    switch (m?.type) {
      case 'reservation':
        reservations.answer(m);
        break;
      case 'snapshot': {
        const snapshot = proc.snapshot();
        void tell({ type: 'snapshot', id: m.id, snapshot: snapshot === undefined || http === undefined ? snapshot : { ...snapshot, http: http.stats() } });
        break;
      }
      case 'fence':
        // The node this worker answers from, whichever front end serves it (UDP, or HTTP alone).
        proc.live?.node()?.stopIssuing(m.reason ?? 'the server lost its claim');
        break;
      case 'claim': {
        if (m.claim === undefined || !proc.ready) break;
        // The primary claimed again: serve under the new claim on this socket. A worker that
        // cannot exits, and the primary starts it again under the claim.
        const member = proc.fleetMember();
        void member?.adopt(underClaim(m.claim)).catch(async (error: unknown) => {
          await tell({ type: 'failed', index, failure: failureOf(error) });
          process.exit(1);
        });
      }
    }
  });

  // With --http: this worker answers HTTP from its own stripe, on the port every worker
  // shares (node:cluster's primary accepts and hands connections round robin) — bound
  // before the node opens, as in one process, so early requests get STARTING.
  let http: HttpIdServer | undefined;
  try {
    await proc.prepare({ ...config, transport, host, port, ...(fleetClaim === undefined ? {} : { fleetClaim, reservationLink: (claim: SentClaim) => reservations.linkFor(claim) }) }, { index, count: config.workers }, logger);
    http = await startHttp(config, proc, logger, undefined, { announce: false });
  } catch (error) {
    await tell({ type: 'failed', index, failure: failureOf(error) });
    process.exit(1);
  }
  if (http !== undefined) void tell({ type: 'http-listening', index, url: `http://${hostPort(http.address.host, http.address.port)}`, port: http.address.port });

  let serving: boolean;
  try {
    serving = await Promise.race([proc.start().then(() => true), stopped.then(() => false)]);
  } catch (error) {
    // The primary prints it, once for the whole server; an unexpected error's stack goes to
    // this worker's log (one JSON line), not to the operator's terminal.
    const failure = failureOf(error);
    if (failure.code === 'INTERNAL') logger.error({ worker: index, err: (error as Error)?.stack ?? String(error) }, 'worker failed with an unexpected error');
    await tell({ type: 'failed', index, failure });
    process.exit(1);
  }
  if (!serving) {
    await http?.close(0);
    // Told to stop while starting: the lock it may hold is released by the kernel (or taken
    // over as a dead process's) at the next start.
    process.exit(0);
  }
  const server = proc.server;
  // With --no-udp there is no socket to name: the primary says "over http only".
  await tell({ type: 'listening', index, host: server?.address.host ?? '', port: server?.address.port ?? 0, transport: server?.stats().transport.name ?? 'none' });
  await stopped;
  // HTTP first: the requests in flight are answered from the node before it closes.
  await http?.close();
  await proc.close();
  await workerGuard?.close();
  // The IPC channel to the primary would keep this process alive.
  if (process.connected) process.disconnect();
  return 0;
}
