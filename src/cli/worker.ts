// One worker process of `hailstone serve --workers N`: serves its stripe of the node,
// reports to the primary over the IPC channel, and stops when told — also while it is
// still starting, and when the primary is gone.
//
// Messages to the primary:   { type: 'listening', index, host, port, transport }
//                            { type: 'failed', index, failure }   (then it exits 1)
//                            { type: 'snapshot', id, snapshot }
//                            { type: 'claim-lost', reason }   (fleet: a write found the claim gone)
// Messages from the primary: { type: 'snapshot', id }, { type: 'fence', reason } (fleet: the
// claim is lost, stop issuing now), { type: 'claim', claim } (fleet: serve under this new
// claim). The primary stops a worker with SIGTERM.

import type { ClaimRef } from '../fleet/etcd-store.js';
import { holdWorkerGuard } from '../server/port-guard.js';
import { fleetMemberOf } from '../server/server.js';
import type { TransportChoice } from '../server/select-transport.js';
import { failureOf } from './failure.js';
import { type ServeConfig, ServingProcess, makeLogger, onStopSignal } from './run-server.js';

export interface WorkerMessage {
  type?: string;
  id?: number;
  reason?: string;
  claim?: Omit<ClaimRef, 'lose'>;
}

/** Sends to the primary, ignoring a channel that is already gone. */
function tell(message: object): Promise<void> {
  return new Promise((resolve) => {
    if (process.send === undefined || !process.connected) return resolve();
    try {
      process.send(message, undefined, {}, () => resolve());
    } catch {
      resolve();
    }
  });
}

export async function serveWorker(config: ServeConfig): Promise<number> {
  const index = Number(process.env.HAILSTONE_WORKER_INDEX);
  const logger = makeLogger(config, index);
  // A crash is one JSON log line (with the stack as a field), not a stack trace on the
  // server's terminal; the primary restarts the worker and reports a crash loop in one line.
  const crash = (error: unknown) => {
    logger.error({ worker: index, err: (error as Error)?.stack ?? String(error) }, 'worker crashed');
    process.exit(1);
  };
  process.on('uncaughtException', crash);
  process.on('unhandledRejection', crash);
  // The primary decided the transport (and said why, once) and, for native workers, the port.
  const transport = (process.env.HAILSTONE_WORKER_TRANSPORT as TransportChoice | undefined) ?? config.transport;
  // The primary reserved the port (and resolved the host) for all of them.
  const port = process.env.HAILSTONE_WORKER_PORT === undefined ? config.port : Number(process.env.HAILSTONE_WORKER_PORT);
  const host = process.env.HAILSTONE_WORKER_HOST ?? config.host;
  const proc = new ServingProcess(index);
  // Held while it serves: if its primary dies while this worker is stopped, the next server
  // on the port can say which hailstone worker still has it.
  const workerGuard = await holdWorkerGuard(port, index, process.ppid);
  const claimText = process.env.HAILSTONE_FLEET_CLAIM;
  const fleetClaim: ClaimRef | undefined =
    claimText === undefined ? undefined : { ...(JSON.parse(claimText) as ClaimRef), lose: (reason) => void tell({ type: 'claim-lost', reason }) };

  let stopNow: () => void = () => undefined;
  const stopped = new Promise<void>((resolve) => {
    stopNow = resolve;
  });
  onStopSignal(stopNow);
  // Without the primary nobody supervises this process or answers for its health: stop.
  process.on('disconnect', stopNow);
  process.on('message', (m: WorkerMessage) => {
    if (m?.type === 'snapshot') void tell({ type: 'snapshot', id: m.id, snapshot: proc.snapshot() });
    if (m?.type === 'fence' && proc.ready) proc.server?.node.stopIssuing(m.reason ?? 'the server lost its claim');
    if (m?.type === 'claim' && m.claim !== undefined && proc.ready) {
      // The primary claimed again: serve under the new claim on this socket. A worker that
      // cannot exits, and the primary starts it again under the claim.
      const claim: ClaimRef = { ...m.claim, lose: (reason) => void tell({ type: 'claim-lost', reason }) };
      const member = proc.server === undefined ? undefined : fleetMemberOf(proc.server);
      void member?.adopt(claim).catch(async (error: unknown) => {
        await tell({ type: 'failed', index, failure: failureOf(error) });
        process.exit(1);
      });
    }
  });

  const starting = proc.start({ ...config, transport, host, port, ...(fleetClaim === undefined ? {} : { fleetClaim }) }, { index, count: config.workers }, logger);
  let server;
  try {
    server = await Promise.race([starting, stopped.then(() => undefined)]);
  } catch (error) {
    // The primary prints it, once for the whole server; an unexpected error's stack goes to
    // this worker's log (one JSON line), not to the operator's terminal.
    const failure = failureOf(error);
    if (failure.code === 'INTERNAL') logger.error({ worker: index, err: (error as Error)?.stack ?? String(error) }, 'worker failed with an unexpected error');
    await tell({ type: 'failed', index, failure });
    process.exit(1);
  }
  if (server === undefined) {
    // Told to stop while starting: the lock it may hold is released by the kernel (or taken
    // over as a dead process's) at the next start.
    process.exit(0);
  }
  await tell({ type: 'listening', index, host: server.address.host, port: server.address.port, transport: server.stats().transport.name });
  await stopped;
  await server.close();
  await workerGuard?.close();
  // The IPC channel to the primary would keep this process alive.
  if (process.connected) process.disconnect();
  return 0;
}
