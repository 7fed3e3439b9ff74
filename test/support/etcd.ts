// A real etcd for fleet tests: its own free loopback ports and temp data dir, started as a
// tracked child (killed with the test's other children, pass or fail), killable and
// restartable on the same data dir.

import type { ChildProcess } from 'node:child_process';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { collectText, exited, spawnTracked, waitFor } from './child.js';
import { requirePrerequisite } from './prerequisite.js';

export const etcdInstalled = spawnSync('etcd', ['--version']).status === 0;

/** Fleet tests skip without etcd on a developer's machine; under CI its absence fails, named. */
export function requireEtcd(): void {
  requirePrerequisite(etcdInstalled, 'etcd (Debian package etcd-server) for fleet mode against a real etcd');
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const port = (server.address() as { port: number }).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

export class TestEtcd {
  private child: ChildProcess | undefined;
  private log = { text: () => '' };

  private constructor(
    readonly dataDir: string,
    readonly clientPort: number,
    readonly peerPort: number,
  ) {}

  /** The client URL. */
  get endpoint(): string {
    return `http://127.0.0.1:${this.clientPort}`;
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  static async start(): Promise<TestEtcd> {
    const etcd = new TestEtcd(mkdtempSync(join(tmpdir(), 'hailstone-etcd-')), await freePort(), await freePort());
    await etcd.run();
    return etcd;
  }

  /** Starts (again) on the same data dir and ports; resolves once it answers. */
  async run(): Promise<void> {
    const name = 'hailstone-test';
    this.child = spawnTracked('etcd', [
      '--name', name,
      '--data-dir', this.dataDir,
      '--listen-client-urls', this.endpoint,
      '--advertise-client-urls', this.endpoint,
      '--listen-peer-urls', `http://127.0.0.1:${this.peerPort}`,
      '--initial-advertise-peer-urls', `http://127.0.0.1:${this.peerPort}`,
      '--initial-cluster', `${name}=http://127.0.0.1:${this.peerPort}`,
      '--log-level', 'error',
    ], { scope: 'file' });
    const child = this.child;
    this.log = collectText(child.stderr!);
    await waitFor(
      async () => {
        try {
          const res = await fetch(`${this.endpoint}/health`);
          return res.ok ? true : undefined;
        } catch {
          return undefined;
        }
      },
      { what: 'etcd to answer', child, stderr: this.log, timeoutMs: 20_000 },
    );
  }

  /** SIGKILL; resolves once it is gone. */
  async kill(): Promise<void> {
    const child = this.child;
    if (child === undefined || child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGKILL');
    await exited(child);
    this.child = undefined;
  }

  async stop(): Promise<void> {
    await this.kill();
    rmSync(this.dataDir, { recursive: true, force: true });
  }
}
