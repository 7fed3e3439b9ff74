// One server per UDP port — and per HTTP port, for ids over HTTP (`--http`).
//
// Worker processes of one server share its port with SO_REUSEPORT, and the kernel lets any
// process of the same user join such a group: a second `hailstone serve --workers N` on
// the same port would silently take a share of the first one's clients — two servers
// behind one address, whose duplicate ids no client can see. The guard makes the group
// private to one server.
//
// It is an abstract Unix socket named after the port (Linux). Three properties make it the
// right lock:
//  - binding a name that is bound fails (EADDRINUSE), atomically;
//  - the kernel releases it when its process dies, SIGKILL included: no stale lock file,
//    so a restart of the same server on its port works at once;
//  - abstract names live in the network namespace, exactly like UDP ports, and not in the
//    file system, so a private /tmp (systemd's PrivateTmp) cannot split it.
// The holder answers whoever connects with one JSON line naming itself, so the refusal
// can say which process to stop.
//
// The guard is per port, whatever the address: 127.0.0.1:P and 0.0.0.0:P overlap, and
// two servers on one port of one machine are more likely a mistake than a design.
// Elsewhere than Linux there is no SO_REUSEPORT group to protect (the native transport is
// Linux-only; dgram workers share one exclusively bound socket): the guard is a no-op.
//
// An HTTP port has a guard of its own (another name: UDP and TCP ports of one number are
// different ports). Node 20 binds TCP exclusively, so the kernel already refuses a second
// listener on an overlapping address; the guard adds what it adds for UDP — one hailstone
// server per port number whatever the address, refused with the holder's own words (pid,
// node id, workers), and ready for SO_REUSEPORT on TCP (Node 22's `reusePort`).

import { type Socket as DgramSocket, createSocket } from 'node:dgram';
import { readFileSync } from 'node:fs';
import { type Server as NetServer, type Socket, createConnection, createServer, isIPv6 } from 'node:net';
import { hostPort } from '../address.js';
import { HailstoneError } from '../errors.js';
import { processWithSocket } from './proc-sockets.js';

/** What the holder of a port says about itself. */
export interface PortHolder {
  pid: number;
  /** The address it serves on, "host:port". */
  address: string;
  /** The node id it serves, when it knows it. */
  nodeId?: number | undefined;
  workers: number;
}

export interface PortGuard {
  readonly port: number;
  /** Releases the port for another server. */
  close(): Promise<void>;
}

/** How long a refused server waits for the holder to say who it is. */
const ASK_TIMEOUT_MS = 500;

/** Which of a server's ports a guard is for. */
export type GuardedProtocol = 'udp' | 'http';

/** The abstract socket's name for a UDP (or HTTP) port ("\0" makes it abstract). */
export function guardName(port: number, protocol: GuardedProtocol = 'udp'): string {
  return `\0hailstone/${protocol}/${port}`;
}

/** True where the guard is enforced. */
export const PORT_GUARD_ENFORCED = process.platform === 'linux';

/**
 * Takes the guard of `port` for this process, or throws PORT_IN_USE naming the server that
 * holds it. Port 0 is not a port: pick one first.
 */
export async function holdPort(port: number, self: Omit<PortHolder, 'pid'>, protocol: GuardedProtocol = 'udp'): Promise<PortGuard> {
  if (!Number.isInteger(port) || port <= 0 || port > 65535) throw new RangeError(`holdPort needs a port from 1 to 65535, got ${port}`);
  if (!PORT_GUARD_ENFORCED) return { port, close: () => Promise.resolve() };
  const line = `${JSON.stringify({ ...self, pid: process.pid } satisfies PortHolder)}\n`;
  for (let attempt = 1; ; attempt++) {
    try {
      return { port, close: await answerOn(guardName(port, protocol), line) };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw error;
      const holding = await whoHolds(port, protocol);
      // Gone meanwhile (its process just ended): try again, once.
      if (holding.kind === 'none' && attempt === 1) continue;
      throw portHeldError(port, holding.kind === 'none' ? { kind: 'silent', pid: undefined } : holding, protocol);
    }
  }
}

/**
 * Binds the abstract socket `name` and answers every connection with `line`; resolves with
 * what releases it, rejects with the bind's error. It never keeps the process alive.
 */
async function answerOn(name: string, line: string): Promise<() => Promise<void>> {
  const server = createServer((socket) => {
    socket.on('error', () => undefined);
    socket.end(line);
  });
  server.on('error', () => undefined);
  try {
    await listen(server, name);
  } catch (error) {
    server.close();
    throw error;
  }
  server.unref();
  let closing: Promise<void> | undefined;
  return () => (closing ??= new Promise<void>((resolve) => server.close(() => resolve())));
}

/** Who holds the guard of `port`: the holder's own words, or undefined when nobody answers in time. */
export async function askHolder(port: number): Promise<PortHolder | undefined> {
  const answer = await ask(guardName(port));
  return answer.kind === 'answered' ? answer.holder : undefined;
}

/** What is behind a guard's name: a holder that answered, one that is bound but silent, or nobody. */
type Answer = { kind: 'answered'; holder: PortHolder } | { kind: 'silent' } | { kind: 'none' };

function ask(name: string): Promise<Answer> {
  if (!PORT_GUARD_ENFORCED) return Promise.resolve({ kind: 'none' });
  return new Promise((resolve) => {
    let text = '';
    let connected = false;
    let socket: Socket | undefined;
    const done = (holder: PortHolder | undefined): void => {
      clearTimeout(timer);
      socket?.destroy();
      resolve(holder !== undefined ? { kind: 'answered', holder } : connected ? { kind: 'silent' } : { kind: 'none' });
    };
    // A holder stopped with SIGSTOP accepts (the kernel does) but never answers.
    const timer = setTimeout(() => done(undefined), ASK_TIMEOUT_MS);
    socket = createConnection({ path: name });
    socket.setEncoding('utf8');
    socket.on('connect', () => (connected = true));
    socket.on('data', (chunk: string) => {
      text += chunk;
      if (text.includes('\n')) done(parseHolder(text.slice(0, text.indexOf('\n'))));
    });
    socket.on('end', () => done(parseHolder(text)));
    socket.on('error', () => done(undefined));
  });
}

/** Who holds `port`, as far as can be told: its own words, or (stopped, busy) the pid the kernel knows. */
export type Holding = { kind: 'answered'; holder: PortHolder } | { kind: 'silent'; pid: number | undefined } | { kind: 'none' };

export async function whoHolds(port: number, protocol: GuardedProtocol = 'udp'): Promise<Holding> {
  const name = guardName(port, protocol);
  const answer = await ask(name);
  return answer.kind === 'silent' ? { kind: 'silent', pid: pidBehind(name) } : answer;
}

/**
 * The process that has the abstract socket `name` bound, from /proc (what `ss -xlp` reads):
 * its inode in /proc/net/unix, then the process with a descriptor on that inode. Undefined
 * when it cannot be told (another user's process, no /proc).
 */
function pidBehind(name: string): number | undefined {
  try {
    const shown = `@${name.slice(1)}`;
    const inodes = new Set<string>();
    for (const line of readFileSync('/proc/net/unix', 'utf8').split('\n')) {
      const fields = line.trim().split(/\s+/);
      // Node binds abstract names padded with NULs to the full address length; /proc shows them as '@'.
      if (fields[7]?.replace(/@+$/, '') === shown && fields[6] !== undefined) inodes.add(fields[6]);
    }
    if (inodes.size === 0) return undefined;
    return processWithSocket(inodes);
  } catch {
    // no /proc: say what is known without it
  }
  return undefined;
}

function parseHolder(text: string): PortHolder | undefined {
  try {
    const value = JSON.parse(text) as Partial<PortHolder>;
    return Number.isInteger(value.pid) ? (value as PortHolder) : undefined;
  } catch {
    return undefined;
  }
}

/** PORT_IN_USE (HTTP_PORT_IN_USE) for a port another hailstone server holds (answered or silent). */
export function portHeldError(port: number, holding: Exclude<Holding, { kind: 'none' }>, protocol: GuardedProtocol = 'udp'): HailstoneError {
  const who =
    holding.kind === 'silent'
      ? `the hailstone server with pid ${holding.pid ?? '(unknown)'}, which does not answer (stopped with SIGSTOP, or frozen)`
      : `the hailstone server with pid ${holding.holder.pid} (serving ${holding.holder.address}${holding.holder.nodeId === undefined ? '' : ` as node ${holding.holder.nodeId}`}, ${holding.holder.workers} worker${holding.holder.workers === 1 ? '' : 's'})`;
  return protocol === 'udp'
    ? new HailstoneError('PORT_IN_USE', `UDP port ${port} is held by ${who}: stop it, or choose another port (--port)`, { retryAfterMs: 1000 })
    : new HailstoneError('HTTP_PORT_IN_USE', `the HTTP port ${port} is held by ${who}: stop it, or choose another with --http HOST:PORT`, { retryAfterMs: 1000 });
}

/** The name a worker of a --workers server holds while it serves `port`, so it can be named if its primary is gone. */
export function workerGuardName(port: number, index: number): string {
  return `${guardName(port)}/worker/${index}`;
}

/** The most workers a server runs (the --workers limit): how many worker names to look for. */
const MAX_WORKERS = 64;

/**
 * For a worker: holds its name while it serves, answering with its pid and its primary's.
 * Best effort — a name still held by an exiting predecessor is not a reason to fail.
 */
export async function holdWorkerGuard(port: number, index: number, primaryPid: number): Promise<PortGuard | undefined> {
  if (!PORT_GUARD_ENFORCED) return undefined;
  const line = `${JSON.stringify({ pid: process.pid, primaryPid, worker: index })}\n`;
  try {
    return { port, close: await answerOn(workerGuardName(port, index), line) };
  } catch {
    return undefined;
  }
}

/** Workers of some hailstone server still bound to `port`: their pids as far as can be told. */
async function workersOn(port: number): Promise<{ worker: number; pid: number | undefined; primaryPid?: number }[]> {
  const found: { worker: number; pid: number | undefined; primaryPid?: number }[] = [];
  for (let index = 0; index < MAX_WORKERS; index++) {
    const name = workerGuardName(port, index);
    const answer = await ask(name);
    if (answer.kind === 'none') continue;
    const said = answer.kind === 'answered' ? (answer.holder as unknown as { pid: number; primaryPid: number }) : undefined;
    found.push({ worker: index, pid: said?.pid ?? pidBehind(name), ...(said === undefined ? {} : { primaryPid: said.primaryPid }) });
  }
  return found;
}

function listen(server: NetServer, path: string): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ path, exclusive: true }, () => {
      server.off('error', reject);
      resolve();
    });
  });
}

/** How long a server waits for a port that is bound but unguarded (workers of a killed server exiting) to free. */
const UNGUARDED_WAIT_MS = 2000;

/**
 * For a server whose workers will share `port` (0: pick a free one): takes the guard, then
 * proves nobody is bound to the port — not a server of an older version, not workers of a
 * primary that was just killed, not another program — by binding it exclusively for a
 * moment. Only then may the workers join it with SO_REUSEPORT. Throws PORT_IN_USE.
 */
export async function reservePortForWorkers(host: string, port: number, self: Omit<PortHolder, 'pid' | 'address'>): Promise<PortGuard> {
  const family = isIPv6(host) ? 'udp6' : 'udp4';
  if (port === 0) {
    // The kernel picks a free port; guard it, then let it go for the workers.
    const probe = await bindExclusive(family, host, 0);
    const picked = (probe.address() as { port: number }).port;
    try {
      return await holdPort(picked, { ...self, address: hostPort(host, picked) });
    } finally {
      await closeSocket(probe);
    }
  }
  const guard = await holdPort(port, { ...self, address: hostPort(host, port) });
  const until = Date.now() + UNGUARDED_WAIT_MS;
  for (;;) {
    try {
      await closeSocket(await bindExclusive(family, host, port));
      return guard;
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'EADDRINUSE' && Date.now() < until) {
        await new Promise((resolve) => setTimeout(resolve, 50));
        continue;
      }
      await guard.close();
      if (code !== 'EADDRINUSE') throw error;
      // Workers of a server whose primary is gone (killed while a worker was stopped)?
      const orphans = await workersOn(port);
      if (orphans.length > 0) {
        const pids = orphans.map((o) => `worker ${o.worker} (pid ${o.pid ?? 'unknown'})`).join(', ');
        throw new HailstoneError(
          'PORT_IN_USE',
          `UDP port ${port} on ${host} is still bound by ${pids} of a hailstone server whose primary is gone: it is stopped or exiting; kill it, or choose another port (--port)`,
          { cause: error, retryAfterMs: 1000 },
        );
      }
      throw new HailstoneError('PORT_IN_USE', `UDP port ${port} on ${host} is in use by another process that is not a running hailstone server (see: ss -ulpn sport = :${port}): stop it, or choose another port (--port)`, { cause: error });
    }
  }
}

function bindExclusive(type: 'udp4' | 'udp6', host: string, port: number): Promise<DgramSocket> {
  return new Promise((resolve, reject) => {
    const socket = createSocket({ type });
    socket.once('error', (error) => {
      socket.close();
      reject(error);
    });
    // exclusive: in a cluster primary too, bind here and now, never through a shared handle.
    socket.bind({ address: host, port, exclusive: true }, () => {
      socket.removeAllListeners('error');
      resolve(socket);
    });
  });
}

function closeSocket(socket: DgramSocket): Promise<void> {
  return new Promise((resolve) => socket.close(() => resolve()));
}
