// What the server benchmarks share: starting a server process and reading its port,
// compiling the C helpers, and a throwaway etcd on free loopback ports. Every process is
// stopped by the benchmark that started it.

import { type ChildProcess, execFile, execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

export const ROOT = fileURLToPath(new URL('../', import.meta.url));

export interface Started {
  child: ChildProcess;
  port: number;
  stop(): Promise<void>;
}

/**
 * Starts a server process and resolves once it prints its port. `wrap` runs it under
 * another command (taskset to pin it, strace to slow its fsyncs).
 */
export function startProcess(command: string, args: string[], portPattern: RegExp, options: { cleanup?: () => void; wrap?: string[] } = {}): Promise<Started> {
  const wrap = options.wrap ?? [];
  const child = spawn(wrap[0] ?? command, [...wrap.slice(1), ...(wrap.length > 0 ? [command] : []), ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  return new Promise((resolve, reject) => {
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const m = portPattern.exec(out);
      if (m)
        resolve({
          child,
          port: Number(m[1]),
          stop: () =>
            new Promise((done) => {
              if (child.exitCode !== null || child.signalCode !== null) {
                options.cleanup?.();
                return done();
              }
              // A wrapper that forks (strace) ignores SIGTERM while it traces: stop the
              // program it runs, and the wrapper ends with it. SIGKILL both after 10 s.
              const targets = wrap.length > 0 && childrenOf(child.pid!).length > 0 ? childrenOf(child.pid!) : [child.pid!];
              const killer = setTimeout(() => {
                for (const pid of [...targets, child.pid!]) signal(pid, 'SIGKILL');
              }, 10_000);
              child.once('exit', () => {
                clearTimeout(killer);
                options.cleanup?.();
                done();
              });
              for (const pid of targets) signal(pid, 'SIGTERM');
            }),
        });
    });
    child.once('exit', (code) => reject(new Error(`${command} ${args.join(' ')} exited (${code}): ${err}`)));
  });
}

/** The direct children of a process (Linux). */
function childrenOf(pid: number): number[] {
  try {
    const text = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim();
    return text === '' ? [] : text.split(/\s+/).map(Number);
  } catch {
    return [];
  }
}

function signal(pid: number, name: NodeJS.Signals): void {
  try {
    process.kill(pid, name);
  } catch {
    // already gone
  }
}

/** Compiles bench/NAME.c with cc -O2; undefined (and says why) where it cannot. */
export function buildC(name: string, purpose: string): string | undefined {
  const dir = mkdtempSync(join(tmpdir(), `hailstone-${name}-`));
  const binary = join(dir, name);
  try {
    execFileSync('cc', ['-O2', '-o', binary, join(ROOT, `bench/${name}.c`)], { stdio: 'pipe' });
    return binary;
  } catch (error) {
    console.log(`(${purpose}: ${(error as Error).message.split('\n')[0]})`);
    return undefined;
  }
}

export interface Etcd {
  endpoint: string;
  /** etcd's own count of transactions so far. */
  txns: () => Promise<number>;
  stop: () => Promise<void>;
}

/** A TCP port on 127.0.0.1 that is free right now. */
/** The lowest port the kernel hands out for outgoing connections (32768 by default). */
function ephemeralLow(): number {
  try {
    return Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]) || 32768;
  } catch {
    return 32768;
  }
}

async function canBind(port: number): Promise<boolean> {
  const server = createServer();
  return new Promise((resolve) => {
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

/**
 * `count` TCP ports free now, from a random place below the kernel's ephemeral range: a port
 * the kernel picked for a listener and let go can be taken by any outgoing connection (a
 * gRPC client, a test's socket) before the process it is for binds it; one below the range
 * only by another listener. Callers that bind later retry on EADDRINUSE all the same.
 */
export async function freeLowPorts(count: number, taken: Set<number> = new Set()): Promise<number[]> {
  const high = Math.min(32_000, ephemeralLow() - 1);
  const low = Math.min(20_000, high - 2000);
  const ports: number[] = [];
  let candidate = low + Math.floor(Math.random() * (high - low));
  for (let tries = 0; ports.length < count; tries++) {
    if (tries > 5000) throw new Error(`no ${count} free ports in ${low}..${high}`);
    candidate = candidate >= high ? low : candidate + 1;
    if (taken.has(candidate) || ports.includes(candidate)) continue;
    if (await canBind(candidate)) ports.push(candidate);
  }
  return ports;
}

/** One free TCP port below the ephemeral range, for a server that is given its port. */
export async function freeTcpPort(): Promise<number> {
  return (await freeLowPorts(1))[0]!;
}

/** A throwaway etcd on free loopback ports (fleet rows); undefined (and says why) where there is none. */
export async function startEtcd(wrap: string[] = []): Promise<Etcd | undefined> {
  const [client, peer] = (await freeLowPorts(2)) as [number, number];
  const dir = mkdtempSync(join(tmpdir(), 'hailstone-bench-etcd-'));
  const endpoint = `http://127.0.0.1:${client}`;
  const etcdArgs = ['--data-dir', dir, '--listen-client-urls', endpoint, '--advertise-client-urls', endpoint,
    '--listen-peer-urls', `http://127.0.0.1:${peer}`, '--initial-advertise-peer-urls', `http://127.0.0.1:${peer}`,
    '--initial-cluster', `default=http://127.0.0.1:${peer}`, '--log-level', 'error'];
  const child = spawn(wrap[0] ?? 'etcd', [...wrap.slice(1), ...(wrap.length > 0 ? ['etcd'] : []), ...etcdArgs], { stdio: 'ignore' });
  const failed = await new Promise<string | undefined>((resolve) => {
    child.once('error', (error) => resolve(error.message));
    const poll = async (left: number): Promise<void> => {
      try {
        if ((await fetch(`${endpoint}/health`)).ok) return resolve(undefined);
      } catch {
        // not yet
      }
      if (left <= 0) return resolve('etcd did not answer within 10 s');
      setTimeout(() => void poll(left - 1), 100);
    };
    void poll(100);
  });
  const stop = () =>
    new Promise<void>((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) return resolve();
      child.once('exit', () => resolve());
      // etcd itself, and a wrapper (strace) around it.
      for (const pid of [...childrenOf(child.pid!), child.pid!]) signal(pid, 'SIGKILL');
    }).then(() => rmSync(dir, { recursive: true, force: true }));
  if (failed !== undefined) {
    await stop();
    console.log(`(no fleet rows: ${failed})`);
    return undefined;
  }
  const txns = async () => Number(/^etcd_mvcc_txn_total (\d+)/m.exec(await (await fetch(`${endpoint}/metrics`)).text())?.[1] ?? NaN);
  return { endpoint, txns, stop };
}


/** What both C load generators count (bench/mmsg-load.c, bench/open-load.c). */
export interface LoadCounts {
  requests: number;
  /** OK replies. */
  replies: number;
  unavailable: number;
  lost: number;
  idsChecked: number;
  duplicates: number;
  p50us: number;
  p99us: number;
  p999us: number;
}

/** What bench/open-load.c prints. */
export interface OpenLoadResult extends LoadCounts {
  rate: number;
  seconds: number;
  badRequest: number;
  invalid: number;
  maxUs: number;
  sendLagP99us: number;
  sendLagMaxUs: number;
}

/** Runs the open-loop generator against PORT at RATE for `ms` after a 1 s warmup. */
export async function openLoad(binary: string, port: number, rate: number, ms: number, echo = false): Promise<OpenLoadResult> {
  const { stdout } = await promisify(execFile)(binary, [String(port), String(rate), '1000', String(ms), ...(echo ? ['echo'] : [])], { maxBuffer: 1 << 20 });
  return JSON.parse(stdout) as OpenLoadResult;
}

export function startHailstoneNative(extra: string[] = [], wrap: string[] = []): Promise<Started> {
  const dir = mkdtempSync(join(tmpdir(), 'hailstone-bench-'));
  return startProcess(process.execPath, ['dist/cli/main.js', 'serve', '--port', '0', '--state-dir', dir, '--transport', 'native', ...extra], /listening on udp:\/\/[^ ]+:(\d+)/, {
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
    wrap,
  });
}

/** Clock ticks per second of /proc/PID/stat's times. */
const CLK_TCK = Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100;

/** The process and its children (cluster workers, gunicorn's worker), from /proc. */
export function processTree(pid: number): number[] {
  try {
    const children = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim();
    return [pid, ...(children === '' ? [] : children.split(/\s+/).map(Number).flatMap(processTree))];
  } catch {
    return [pid];
  }
}

/** CPU seconds (user + system) used so far by the process tree. */
export function cpuSeconds(pid: number): number {
  let ticks = 0;
  for (const p of processTree(pid)) {
    try {
      const stat = readFileSync(`/proc/${p}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      ticks += Number(f[11]) + Number(f[12]); // utime, stime
    } catch {
      // exited
    }
  }
  return ticks / CLK_TCK;
}
