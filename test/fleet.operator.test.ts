
// What an operator meets when etcd goes away under a fleet server: /healthz names the node
// and blames the coordinator, the log tells each episode once (with its end), and nothing
// speaks the library's language. A real `hailstone serve`, a real etcd killed and restarted.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from './support/child.js';
import { TestEtcd, etcdInstalled, requireEtcd } from './support/etcd.js';
import { Load, startServe } from './support/serve-process.js';

interface Healthz {
  status: number;
  body: { status: string; nodeId?: number; reason?: string; retryAfterMs?: number };
}

async function healthz(port: number): Promise<Healthz> {
  const res = await fetch(`http://127.0.0.1:${port}/healthz`);
  return { status: res.status, body: (await res.json()) as Healthz['body'] };
}

/** The log lines (pino JSON) whose message matches. */
function lines(stderr: string, message: RegExp): Record<string, unknown>[] {
  return stderr
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>)
    .filter((l) => message.test(String(l.msg)));
}

requireEtcd();

describe.skipIf(!etcdInstalled)('fleet mode: etcd down, as an operator sees it (real etcd, real server)', () => {
  let etcd: TestEtcd;
  beforeAll(async () => {
    etcd = await TestEtcd.start();
  });
  afterAll(async () => {
    await etcd?.stop();
  });

  it('/healthz says "coordinator (etcd)" and the node id; each failure episode is logged once and its end once; no unbounded wait, no openNode', { timeout: 90_000 }, async () => {
    const s = await startServe(['--etcd', etcd.endpoint, '--cluster', 'outage', '--port', '0', '--max-lead-ms', '300', '--lease-ttl-s', '2', '--metrics', '127.0.0.1:0']);
    const nodeId = Number(/ node=(\d+) /.exec(s.stdout())![1]);
    const metricsPort = Number(/"metrics":"http:\/\/127\.0\.0\.1:(\d+)"/.exec(s.stderr())![1]);
    // Healthy once its first renewals are in (a loaded machine may show "renewal pending" for a moment).
    const healthy = await waitFor(async () => {
      const h = await healthz(metricsPort);
      return h.status === 200 ? h : undefined;
    }, { what: '/healthz to say ok', timeoutMs: 20_000 });
    expect(healthy).toEqual({ status: 200, body: { status: 'ok', nodeId } });

    const killedAt = Date.now();
    await etcd.kill();
    // Every answer until the claim is lost and being claimed again blames etcd, never storage.
    const seen: string[] = [];
    const fenced = await waitFor(
      async () => {
        const h = await healthz(metricsPort);
        if (h.status === 503) seen.push(h.body.reason!);
        // The fence, and the claiming that follows it: two steps /healthz can fall between.
        return /fenced/.test(h.body.reason ?? '') && /claiming a node id/.test(h.body.reason ?? '') ? h : undefined;
      },
      { what: '/healthz to report the fence and the claim that follows', child: s.child, stderr: { text: s.stderr } },
    );
    expect(seen.length).toBeGreaterThan(0);
    for (const reason of seen) expect(reason).toMatch(new RegExp(`^node ${nodeId}: coordinator \\(etcd\\)`));
    expect(seen.join('\n')).not.toMatch(/storage/);
    expect(fenced.body).toMatchObject({ status: 'unhealthy', nodeId, retryAfterMs: 1000 });
    expect(fenced.body.reason).toMatch(new RegExp(`coordinator \\(etcd\\): fenced: the claim of node id ${nodeId} was lost .*claiming a node id in cluster outage`));

    // Clients asking now are refused; the log says why in an operator's words.
    const load = new Load([`127.0.0.1:${s.port}`], { concurrency: 1 });
    await waitFor(() => /answering UNAVAILABLE/.test(s.stderr()), { what: 'a refusal to be logged', child: s.child });
    // Long enough for many failed attempts to claim again (retried with backoff).
    await waitFor(() => (lines(s.stderr(), /etcd still failing/).length > 0 ? true : undefined), { what: 'a summary line', timeoutMs: 20_000, child: s.child });
    await etcd.run();
    await waitFor(async () => (await healthz(metricsPort)).status === 200, { what: '/healthz 200 after etcd is back', timeoutMs: 30_000, child: s.child });
    await load.stop();

    const log = s.stderr();
    const refusal = lines(log, /answering UNAVAILABLE/)[0]!;
    expect(refusal.msg).toMatch(/lost its etcd claim: .*the server claims a node id again by itself/);
    expect(log).not.toMatch(/openNode/);
    // The renewals that failed before the fence: one line when they started, one when the fence
    // ended them. (After the re-claim, a new node's renewal may meet an etcd still settling on a
    // loaded machine: an episode of its own, logged the same way, not counted here.)
    // (A renewal slower than its deadline before the kill, on a loaded machine, is an episode of
    // its own too: the lines counted are those from the kill on.)
    const beforeReclaim = log
      .slice(0, log.lastIndexOf('\n', log.indexOf('re-claimed')))
      .split('\n')
      .filter((l) => !l.startsWith('{') || Number((JSON.parse(l) as { time?: number }).time) >= killedAt - 50)
      .join('\n');
    expect(lines(beforeReclaim, /cannot extend the durable reservation/)).toHaveLength(1);
    expect(lines(beforeReclaim, /cannot extend the durable reservation: coordinator \(etcd\) unreachable/)).toHaveLength(1);
    expect(lines(beforeReclaim, /^durable reservation writes failed for \d+ ms \(\d+ failures?\) until the node stopped issuing$/)).toHaveLength(1);
    // Claiming again: one line when etcd was found unreachable, a summary every 10 s at most, one at the end.
    const waiting = lines(log, /^etcd unreachable .*waiting for it before claiming a node id$/);
    expect(waiting).toHaveLength(1);
    expect(waiting[0]).not.toHaveProperty('waitMs');
    const summaries = lines(log, /^etcd still failing after \d+ ms \(\d+ failures, \d+ since the last line\)/);
    expect(summaries.length).toBeGreaterThanOrEqual(1);
    const recovered = lines(log, /^etcd recovered after \d+ ms \(\d+ failures\)$/);
    expect(recovered).toHaveLength(1);
    expect(Number(recovered[0]!.failures)).toBeGreaterThanOrEqual(Number(summaries.at(-1)!.failures));
    expect(log).not.toMatch(/9007199254740991/);
    expect(lines(log, /re-claimed/)).toHaveLength(1);

    s.child.kill('SIGTERM');
    expect(await s.done).toBe(0);
  });
});
