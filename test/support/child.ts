// Running real child processes: test fixtures through tsx (they run the sources), and the
// hailstone command as users run it, built (test/support/built.ts builds it first when the
// sources are newer).
//
// Every child starts as the leader of its own process group and is remembered until it
// has exited. test/support/cleanup.ts kills the groups still alive after each test —
// also when the test failed or timed out — so a server and its cluster workers never
// outlive the test that started them.

import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

const running = new Set<ChildProcess>();
/** Children that serve a whole test file (an etcd started in beforeAll): killed after the file, not after each test. */
const fileScoped = new Set<ChildProcess>();
/** Process groups whose leader exited but whose members a test still uses (orphaned workers). */
const orphanGroups = new Set<number>();

/** Starts a process in its own process group and tracks it until it exits. */
export function spawnTracked(
  command: string,
  args: string[],
  options: { env?: Record<string, string>; cwd?: string; scope?: 'test' | 'file'; keepGroupAfterExit?: boolean } = {},
): ChildProcess {
  const child = spawn(command, args, {
    cwd: options.cwd ?? ROOT,
    env: { ...process.env, ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  running.add(child);
  if (options.scope === 'file') fileScoped.add(child);
  child.once('exit', () => {
    // The leader is gone; its group may not be (workers of a killed primary). A test that
    // attacks those orphans keeps the group: killAllChildren still ends it after the test.
    if (options.keepGroupAfterExit === true) {
      orphanGroups.add(child.pid!);
    } else killGroup(child, 'SIGKILL');
    running.delete(child);
    fileScoped.delete(child);
  });
  child.once('error', () => {
    running.delete(child);
    fileScoped.delete(child);
  });
  return child;
}

function killGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    // ESRCH: the whole group is gone.
  }
}

/**
 * SIGKILLs the process group of every child still tracked (after a test: all but the
 * file-scoped ones), and waits until the leaders exited.
 */
export async function killAllChildren(scope: 'test' | 'file' = 'file'): Promise<number> {
  for (const pgid of orphanGroups) {
    try {
      process.kill(-pgid, 'SIGKILL');
    } catch {
      // gone
    }
  }
  orphanGroups.clear();
  const alive = [...running].filter((child) => scope === 'file' || !fileScoped.has(child));
  for (const child of alive) killGroup(child, 'SIGKILL');
  await Promise.all(alive.map((child) => exited(child)));
  return alive.length;
}

/** Runs a TypeScript entry point of this repository (path from the root) through tsx. */
export function spawnTs(entry: string, args: string[], env: Record<string, string> = {}): ChildProcess {
  return spawnTracked(process.execPath, ['--import', 'tsx', entry, ...args], { env });
}

export function spawnFixture(fixture: string, args: string[], env: Record<string, string> = {}): ChildProcess {
  return spawnTs(`test/fixtures/${fixture}`, args, env);
}

/**
 * The built hailstone command (from the repository root), as the package's bin runs it: a
 * third of the CPU of loading the sources through tsx at every start, in a suite that starts
 * hundreds of servers.
 */
export const CLI_ENTRY = 'dist/cli/main.js';

/** The hailstone command. */
export function spawnCli(args: string[], env: Record<string, string> = {}, options: { keepGroupAfterExit?: boolean; scope?: 'test' | 'file' } = {}): ChildProcess {
  return spawnTracked(process.execPath, [CLI_ENTRY, ...args], { env, ...options });
}

/** Runs the command to completion: exit code, stdout, stderr. */
export async function runCli(args: string[], env: Record<string, string> = {}): Promise<{ code: number | string; stdout: string; stderr: string }> {
  const child = spawnCli(args, env);
  const out = collectText(child.stdout!);
  const err = collectText(child.stderr!);
  const code = await exited(child);
  return { code, stdout: out.text(), stderr: err.text() };
}

const READY_LINE = /hailstone listening on udp:\/\/[^ ]+:(\d+) node=(\d+) workers=\d+ transport=\w+\n/;

/** Resolves with the port once a server prints its ready line; rejects if it exits first. */
export async function readyPort(child: ChildProcess, stdout: { text: () => string }, stderr: { text: () => string }): Promise<number> {
  // A server that is starting prints its line or exits; on a loaded machine starting can take long.
  const m = await waitFor(() => READY_LINE.exec(stdout.text()) ?? undefined, { what: 'the ready line', child, stderr, timeoutMs: 60_000 });
  return Number(m[1]);
}

/**
 * Polls `check` until it returns something other than undefined (or false). Rejects when
 * `child` exits first or the deadline passes, saying what was awaited — a condition, never
 * a fixed sleep, with a deadline generous enough for a loaded 2-core machine.
 */
export async function waitFor<T>(
  check: () => T | undefined | false | Promise<T | undefined | false>,
  options: { what: string; timeoutMs?: number; child?: ChildProcess; stderr?: { text: () => string }; everyMs?: number } = { what: 'a condition' },
): Promise<T> {
  const until = Date.now() + (options.timeoutMs ?? 20_000);
  for (;;) {
    const value = await check();
    if (value !== undefined && value !== false) return value;
    const child = options.child;
    if (child !== undefined && (child.exitCode !== null || child.signalCode !== null)) {
      throw new Error(`waiting for ${options.what}: the process exited (${child.exitCode ?? child.signalCode}): ${options.stderr?.text() ?? ''}`);
    }
    if (Date.now() > until) throw new Error(`waiting for ${options.what}: gave up after ${options.timeoutMs ?? 20_000} ms ${options.stderr?.text() ?? ''}`);
    await sleep(options.everyMs ?? 10);
  }
}

/** Resolves with the exit code (or signal name) once the process has exited. */
export function exited(child: ChildProcess): Promise<number | string> {
  if (child.exitCode !== null) return Promise.resolve(child.exitCode);
  if (child.signalCode !== null) return Promise.resolve(child.signalCode);
  return new Promise((resolve) => child.once('exit', (code, signal) => resolve(code ?? signal ?? -1)));
}

/** Everything the process writes to the stream, as text so far. */
export function collectText(stream: NodeJS.ReadableStream): { text: () => string } {
  let text = '';
  stream.setEncoding('utf8');
  stream.on('data', (chunk: string) => {
    text += chunk;
  });
  return { text: () => text };
}

/** The pids of a process's children (Linux /proc), e.g. a primary's cluster workers. */
export function childPids(pid: number): number[] {
  try {
    // The main thread forks the workers, so its task lists them.
    const text = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim();
    return text === '' ? [] : text.split(/\s+/).map(Number);
  } catch {
    return [];
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
