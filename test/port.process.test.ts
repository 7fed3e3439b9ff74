// One server per port, with real `hailstone serve` processes: a second server started on a
// live server's port — another directory, so another state dir and the same default node
// id, the mistake that would double every id — is refused naming the live one, whatever
// the worker counts and transports; every id clients received meanwhile is unique. And a
// server restarted on its own port (after SIGTERM, after SIGKILL of the whole tree, after
// SIGKILL of the primary alone) starts at once.

import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { decode } from '../src/index.js';
import { childPids, runCli, waitFor } from './support/child.js';
import { Load, duplicatesIn, startServe } from './support/serve-process.js';
import { TRANSPORTS } from './support/udp.js';

const root = mkdtempSync(join(tmpdir(), 'hailstone-port-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

const FAST = ['--max-lead-ms', '300'];

/** True while the process exists and is not a zombie waiting to be reaped. */
function isRunning(pid: number): boolean {
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

/** The one-line error of a refused start. */
function refusal(stderr: string): string[] {
  return stderr.split('\n').filter((l) => l.startsWith('hailstone: '));
}

describe.runIf(process.platform === 'linux').each(TRANSPORTS)('one server per port (%s)', (transport) => {
  it('a second --workers 2 server, and a single-process one, on a live --workers 2 server\'s port are refused naming it; 0 duplicates', async () => {
    const first = await startServe(['--workers', '2', '--transport', transport, '--port', '0', '--state-dir', join(root, `${transport}-a`), ...FAST]);
    const load = new Load([`127.0.0.1:${first.port}`], { concurrency: 8 });
    await load.more(300);
    for (const [dir, workers] of [[`${transport}-b`, '2'], [`${transport}-c`, '1']] as const) {
      const second = await runCli(['serve', '--workers', workers, '--transport', transport, '--port', String(first.port), '--state-dir', join(root, dir), ...FAST]);
      expect(second.code).toBe(1);
      // Named by its pid, with what it serves — or, when the machine is too loaded for the
      // holder to answer the guard's probe in time, as a holder that does not answer.
      const refused = refusal(second.stderr);
      expect(refused).toHaveLength(1);
      expect(refused[0]).toMatch(
        new RegExp(
          `^hailstone: PORT_IN_USE: UDP port ${first.port} is held by the hailstone server with pid ${first.pid}` +
            `( \\(serving 127\\.0\\.0\\.1:${first.port} as node 0, 2 workers\\)|, which does not answer \\(stopped with SIGSTOP, or frozen\\)): stop it, or choose another port \\(--port\\)$`,
        ),
      );
      expect(second.stdout).toBe('');
      // Refused before it touched a state dir (or would have claimed anything in etcd).
      expect(existsSync(join(root, dir))).toBe(false);
    }
    await load.more(300);
    const ids = await load.stop();
    expect(duplicatesIn(ids)).toEqual([]);
    // All from the first server's two stripes of node 0.
    expect(new Set(ids.map((id) => decode(id).nodeId))).toEqual(new Set([0]));
    first.child.kill('SIGTERM');
    expect(await first.done).toBe(0);
  });

  it('a --workers 2 server on a live single-process server\'s port is refused naming it', async () => {
    // By host name: resolved to its IPv4 address, in the ready line and the guard alike.
    const first = await startServe(['--host', 'localhost', '--transport', transport, '--port', '0', '--state-dir', join(root, `${transport}-single`), ...FAST]);
    expect(first.stdout()).toMatch(/^hailstone listening on udp:\/\/127\.0\.0\.1:/);
    const second = await runCli(['serve', '--host', 'localhost', '--workers', '2', '--transport', transport, '--port', String(first.port), '--state-dir', join(root, `${transport}-single-b`), ...FAST]);
    expect(second.code).toBe(1);
    expect(refusal(second.stderr)).toEqual([expect.stringContaining(`UDP port ${first.port} is held by the hailstone server with pid ${first.pid} (serving 127.0.0.1:${first.port} as node 0, 1 worker)`)]);
    first.child.kill('SIGTERM');
    expect(await first.done).toBe(0);
  });

  it('restarted on its own port after SIGTERM, after SIGKILL of the whole tree and after SIGKILL of the primary alone: it serves at once; a stopped orphaned worker is named; ids unique across all runs', { timeout: 180_000 }, async () => {
    const dir = join(root, `${transport}-restart`);
    const args = (port: string) => ['--workers', '2', '--transport', transport, '--port', port, '--state-dir', dir, ...FAST];
    const all: bigint[] = [];
    let s = await startServe(args('0'));
    const port = s.port;
    const collect = async (): Promise<void> => {
      const load = new Load([`127.0.0.1:${port}`], { concurrency: 4 });
      await load.more(200);
      all.push(...(await load.stop()));
    };
    await collect();

    s.child.kill('SIGTERM');
    expect(await s.done).toBe(0);
    s = await startServe(args(String(port)));
    await collect();

    // The whole process group at once, as an OOM kill of a cgroup would.
    process.kill(-s.pid, 'SIGKILL');
    await s.done;
    s = await startServe(args(String(port)));
    await collect();

    // A worker stopped (SIGSTOP) when its primary is SIGKILLed keeps the port: the next
    // server is refused, naming that worker; once it is gone, the port is free again.
    s.child.kill('SIGTERM');
    expect(await s.done).toBe(0);
    s = await startServe(args(String(port)), {}, { keepGroupAfterExit: true });
    {
      const [first, second] = childPids(s.pid);
      process.kill(second!, 'SIGSTOP');
      process.kill(s.pid, 'SIGKILL');
      await s.done;
      const refused = await runCli(['serve', '--workers', '2', '--transport', transport, '--port', String(port), '--state-dir', join(root, `${transport}-orphan`), ...FAST]);
      expect(refused.code).toBe(1);
      expect(refusal(refused.stderr)).toEqual([
        expect.stringMatching(new RegExp(`^hailstone: PORT_IN_USE: UDP port ${port} on 127\\.0\\.0\\.1 is still bound by worker [01] \\(pid ${second}\\) of a hailstone server whose primary is gone`)),
      ]);
      process.kill(second!, 'SIGKILL');
      await waitFor(() => ![first, second].some((pid) => isRunning(pid!)), { what: 'the orphaned workers to end', timeoutMs: 5000 });
      s = await startServe(args(String(port)));
      await collect();
    }

    // The primary alone: its workers notice it is gone and stop; the next server waits for
    // them to let go of the port, no longer.
    s.child.kill('SIGTERM');
    expect(await s.done).toBe(0);
    s = await startServe(args(String(port)), {}, { keepGroupAfterExit: true });
    const workers = childPids(s.pid);
    expect(workers).toHaveLength(2);
    process.kill(s.pid, 'SIGKILL');
    await s.done;
    s = await startServe(args(String(port)));
    // They had let go of the port (the new server proved it by binding it alone) and end.
    await waitFor(() => workers.every((pid) => !isRunning(pid)), { what: "the old workers to end", timeoutMs: 5000 });
    await collect();
    s.child.kill('SIGTERM');
    expect(await s.done).toBe(0);
    expect(duplicatesIn(all)).toEqual([]);
    expect(all.length).toBeGreaterThanOrEqual(800);
  });
});

