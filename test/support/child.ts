// Running test fixtures as real child processes (through tsx, so they run the sources).

import { type ChildProcess, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

/** Runs a TypeScript entry point of this repository (path from the root) through tsx. */
export function spawnTs(entry: string, args: string[], env: Record<string, string> = {}): ChildProcess {
  return spawn(process.execPath, ['--import', 'tsx', entry, ...args], {
    cwd: ROOT,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
}

export function spawnFixture(fixture: string, args: string[], env: Record<string, string> = {}): ChildProcess {
  return spawnTs(`test/fixtures/${fixture}`, args, env);
}

/** The hailstone command, from the sources. */
export function spawnCli(args: string[], env: Record<string, string> = {}): ChildProcess {
  return spawnTs('src/cli/main.ts', args, env);
}

/** Runs the command to completion: exit code, stdout, stderr. */
export async function runCli(args: string[], env: Record<string, string> = {}): Promise<{ code: number | string; stdout: string; stderr: string }> {
  const child = spawnCli(args, env);
  const out = collectText(child.stdout!);
  const err = collectText(child.stderr!);
  const code = await exited(child);
  return { code, stdout: out.text(), stderr: err.text() };
}

/** Resolves with the port once a server prints its ready line; rejects if it exits first. */
export function readyPort(child: ChildProcess, stdout: { text: () => string }, stderr: { text: () => string }): Promise<number> {
  return new Promise((resolve, reject) => {
    const check = () => {
      const m = /hailstone listening on udp:\/\/[^ ]+:(\d+) node=\d+ workers=\d+ transport=\w+\n/.exec(stdout.text());
      if (m) return resolve(Number(m[1]));
      if (child.exitCode !== null || child.signalCode !== null) return reject(new Error(`server exited: ${stderr.text()}`));
      setTimeout(check, 5);
    };
    check();
  });
}

/** Resolves with the exit code (or signal name) once the process has exited. */
export function exited(child: ChildProcess): Promise<number | string> {
  if (child.exitCode !== null) return Promise.resolve(child.exitCode);
  if (child.signalCode !== null) return Promise.resolve(child.signalCode);
  return new Promise((resolve) => child.once('exit', (code, signal) => resolve(code ?? signal ?? -1)));
}

/** Everything the process writes to stderr, as text so far. */
export function collectText(stream: NodeJS.ReadableStream): { text: () => string } {
  let text = '';
  stream.setEncoding('utf8');
  stream.on('data', (chunk: string) => {
    text += chunk;
  });
  return { text: () => text };
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
