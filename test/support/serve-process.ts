// `hailstone serve` as a real process, and load against it that keeps every id it gets.

import type { ChildProcess } from 'node:child_process';
import { type Client, HailstoneError, createClient } from '../../src/index.js';
import { collectText, exited, readyPort, spawnCli } from './child.js';

export interface ServeProcess {
  child: ChildProcess;
  pid: number;
  port: number;
  stdout: () => string;
  stderr: () => string;
  done: Promise<number | string>;
}

/** Starts `hailstone serve ARGS`; resolves once it printed its ready line. */
export async function startServe(args: string[], env: Record<string, string> = {}, options: { keepGroupAfterExit?: boolean } = {}): Promise<ServeProcess> {
  const s = spawnServe(args, env, options);
  const port = await readyPort(s.child, { text: s.stdout }, { text: s.stderr });
  return { ...s, port };
}

/** Starts `hailstone serve ARGS` without waiting for it to be ready. */
export function spawnServe(args: string[], env: Record<string, string> = {}, options: { keepGroupAfterExit?: boolean; scope?: 'test' | 'file' } = {}): Omit<ServeProcess, 'port'> {
  const child = spawnCli(['serve', ...args], env, options);
  const out = collectText(child.stdout!);
  const err = collectText(child.stderr!);
  return { child, pid: child.pid!, stdout: out.text, stderr: err.text, done: exited(child) };
}

/**
 * Clients asking one server for ids in a loop, keeping every id of every reply, until
 * stopped or a bound on requests is reached. Refusals are counted by code, never thrown.
 */
export class Load {
  readonly ids: bigint[] = [];
  readonly refusals = new Map<string, number>();
  private stopped = false;
  private readonly loops: Promise<void>[];
  private readonly clients: Client[];

  constructor(servers: string[], options: { concurrency?: number; batch?: number; maxCalls?: number; deadlineMs?: number } = {}) {
    const concurrency = options.concurrency ?? 4;
    let calls = options.maxCalls ?? 1_000_000;
    // Several sockets: with native workers the kernel spreads client sockets across them.
    this.clients = Array.from({ length: concurrency }, () =>
      createClient({ servers, timeoutMs: 50, deadlineMs: options.deadlineMs ?? 300, retries: 2 }),
    );
    this.loops = this.clients.map(async (client) => {
      while (!this.stopped && calls-- > 0) {
        try {
          this.ids.push(...(await client.nextIds(options.batch ?? 20)));
        } catch (error) {
          if (!(error instanceof HailstoneError)) throw error;
          this.refusals.set(error.code, (this.refusals.get(error.code) ?? 0) + 1);
          await new Promise((r) => setTimeout(r, 5));
        }
      }
    });
  }

  /** Resolves once at least `n` more ids arrived (or rejects after `ms`). */
  async more(n: number, ms = 20_000): Promise<void> {
    const target = this.ids.length + n;
    const until = Date.now() + ms;
    while (this.ids.length < target) {
      if (Date.now() > until) throw new Error(`load: ${this.ids.length} ids, wanted ${target} within ${ms} ms (refusals: ${[...this.refusals].join(', ')})`);
      await new Promise((r) => setTimeout(r, 5));
    }
  }

  async stop(): Promise<bigint[]> {
    this.stopped = true;
    await Promise.all(this.loops);
    await Promise.all(this.clients.map((c) => c.close()));
    return this.ids;
  }
}

/**
 * The ids that appear more than once (each repeat listed). Sorted in a typed array rather
 * than put in a Set: a long run collects more ids than a Set can hold (2^24).
 */
export function duplicatesIn(ids: Iterable<bigint>): bigint[] {
  const all = BigUint64Array.from(ids);
  all.sort();
  const dups: bigint[] = [];
  for (let i = 1; i < all.length; i++) if (all[i] === all[i - 1]) dups.push(all[i]!);
  return dups;
}
