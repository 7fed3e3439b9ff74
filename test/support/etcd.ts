// A real etcd for fleet tests: its own free loopback ports and temp data dir, started as a
// tracked child (killed with the test's other children, pass or fail), killable and
// restartable on the same data dir.

import type { ChildProcess } from 'node:child_process';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { collectText, exited, spawnTracked, waitFor } from './child.js';
import { freeLowPorts } from '../../bench/harness.js';
import { requirePrerequisite } from './prerequisite.js';

export const etcdInstalled = spawnSync('etcd', ['--version']).status === 0;

/** Fleet tests skip without etcd on a developer's machine; under CI its absence fails, named. */
export function requireEtcd(): void {
  requirePrerequisite(etcdInstalled, 'etcd (Debian package etcd-server) for fleet mode against a real etcd');
}

/** An etcd serving its clients over TLS: its certificate, and the CA its clients' certificates must come from. */
export interface TestEtcdTls {
  /** The server's certificate and key (change them and run() again to rotate). */
  cert: string;
  key: string;
  /** With --client-cert-auth: clients must present a certificate this CA signed. */
  clientCa?: string;
  /** What run() checks health with: a CA that verifies the server (none: not verified, for an expired certificate), and a client certificate. */
  probe: { ca?: string; cert?: string; key?: string };
}

export interface TestEtcdOptions {
  tls?: TestEtcdTls;
  /** etcd's --auth-token-ttl, seconds (simple tokens expire after this long unused). */
  authTokenTtlS?: number;
  /** More flags for etcd (e.g. --metrics extensive). */
  extraArgs?: string[];
}

export class TestEtcd {
  private child: ChildProcess | undefined;
  private log = { text: () => '' };

  private constructor(
    readonly dataDir: string,
    readonly clientPort: number,
    readonly peerPort: number,
    readonly options: TestEtcdOptions,
  ) {}

  /** The client URL. */
  get endpoint(): string {
    return `${this.options.tls === undefined ? 'http' : 'https'}://127.0.0.1:${this.clientPort}`;
  }

  /** What etcd has written to stderr. */
  get stderr(): string {
    return this.log.text();
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  /**
   * Starts on ports below the kernel's ephemeral range (an ephemeral port free when probed
   * can be taken by any outgoing connection before etcd binds it), again on others when one
   * was taken after all.
   */
  static async start(options: TestEtcdOptions = {}): Promise<TestEtcd> {
    const taken = new Set<number>();
    for (let attempt = 1; ; attempt++) {
      const [clientPort, peerPort] = await freeLowPorts(2, taken);
      taken.add(clientPort!).add(peerPort!);
      const etcd = new TestEtcd(mkdtempSync(join(tmpdir(), 'hailstone-etcd-')), clientPort!, peerPort!, options);
      try {
        await etcd.run();
        return etcd;
      } catch (error) {
        const why = etcd.stderr;
        await etcd.stop();
        if (attempt >= 3 || !/address already in use/.test(why)) throw error;
      }
    }
  }

  /** Starts (again) on the same data dir and ports; resolves once it answers. */
  async run(): Promise<void> {
    const name = 'hailstone-test';
    const tls = this.options.tls;
    const extra = [
      ...(tls === undefined ? [] : ['--cert-file', tls.cert, '--key-file', tls.key]),
      ...(tls?.clientCa === undefined ? [] : ['--trusted-ca-file', tls.clientCa, '--client-cert-auth']),
      ...(this.options.authTokenTtlS === undefined ? [] : ['--auth-token-ttl', String(this.options.authTokenTtlS)]),
      ...(this.options.extraArgs ?? []),
    ];
    this.child = spawnTracked('etcd', [
      '--name', name,
      '--data-dir', this.dataDir,
      '--listen-client-urls', this.endpoint,
      '--advertise-client-urls', this.endpoint,
      '--listen-peer-urls', `http://127.0.0.1:${this.peerPort}`,
      '--initial-advertise-peer-urls', `http://127.0.0.1:${this.peerPort}`,
      '--initial-cluster', `${name}=http://127.0.0.1:${this.peerPort}`,
      '--log-level', 'error',
      ...extra,
    ], { scope: 'file' });
    const child = this.child;
    this.log = collectText(child.stderr!);
    await waitFor(
      async () => {
        try {
          return (tls === undefined ? (await fetch(`${this.endpoint}/health`)).ok : await httpsOk(`${this.endpoint}/health`, tls.probe)) || undefined;
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

/** Whether a GET over TLS answers 200, verifying the server with `ca`. */
function httpsOk(url: string, tls: { ca?: string; cert?: string; key?: string }): Promise<boolean> {
  return new Promise((resolve) => {
    const req = request(
      url,
      {
        ...(tls.ca === undefined ? { rejectUnauthorized: false } : { ca: readFileSync(tls.ca) }),
        ...(tls.cert === undefined ? {} : { cert: readFileSync(tls.cert) }),
        ...(tls.key === undefined ? {} : { key: readFileSync(tls.key) }),
        timeout: 1000,
      },
      (res) => {
        res.resume();
        resolve(res.statusCode === 200);
      },
    );
    req.on('error', () => resolve(false));
    req.on('timeout', () => req.destroy());
    req.end();
  });
}
