// Two servers started with one node id (a configuration error local mode cannot prevent):
// the client notices from the ids, counts it and says so once per pair, and `hailstone get`
// fails; a node id that moved from one server to another is not a conflict.

import { describe, expect, it } from 'vitest';
import { createClient, type NodeIdConflict } from '../src/index.js';
import { NodeIdConflictDetector } from '../src/client/conflicts.js';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openNode } from '../src/node/open.js';
import { serve } from '../src/serve.js';
import { runCli } from './support/child.js';
import { ManualClock } from './support/clock.js';
import { silent } from './support/logger.js';
import { startServer } from './support/udp.js';

/** A server of node id 0 with its own state dir, whose clock stands still at `start`. */
async function frozenServer(start: number): Promise<{ endpoint: string; stop: () => Promise<void> }> {
  const clock = new ManualClock(start);
  const stateDir = mkdtempSync(join(tmpdir(), 'hailstone-frozen-'));
  // The first start's wait moves this clock only: both servers come out of it at one moment.
  const node = await openNode({ nodeId: 0, stateDir, clock: clock.read, sleep: async (ms) => clock.advance(ms), maxLeadMs: 1000, reservationMs: 1000, logger: silent });
  const server = await serve({ node, port: 0, logger: silent });
  return {
    endpoint: `127.0.0.1:${server.address.port}`,
    stop: async () => {
      await server.close();
      await node.close();
      rmSync(stateDir, { recursive: true, force: true });
    },
  };
}

describe('the node id conflict detector', () => {
  const collect = () => {
    const seen: NodeIdConflict[] = [];
    return { seen, detector: new NodeIdConflictDetector((tick) => tick, (c) => seen.push(c)) };
  };

  it('interleaved ranges of one node id from two addresses: one conflict per pair, however often it recurs', () => {
    const { seen, detector } = collect();
    detector.observe('a:1', 7, 100, 100);
    detector.observe('b:1', 7, 101, 101);
    expect(detector.count).toBe(0); // not yet: b may have taken the node id over from a
    detector.observe('a:1', 7, 102, 102);
    expect(detector.count).toBe(1);
    expect(seen).toEqual([{ nodeId: 7, servers: ['b:1', 'a:1'], from: 101, to: 101 }]);
    detector.observe('b:1', 7, 103, 103);
    detector.observe('a:1', 7, 104, 104);
    expect(detector.count).toBe(1);
    detector.observe('c:1', 7, 100, 104);
    expect(detector.count).toBe(3); // c overlaps a and b
  });

  it('a node id that moves (every id from the new address above all from the old) and distinct node ids: no conflict', () => {
    const { detector } = collect();
    detector.observe('a:1', 7, 100, 150);
    detector.observe('b:1', 7, 151, 200);
    detector.observe('b:1', 7, 201, 300);
    detector.observe('a:1', 8, 100, 300);
    detector.observe('c:1', 9, 100, 300);
    expect(detector.count).toBe(0);
  });
});

describe('a client talking to two servers', () => {
  async function askAlternately(servers: string[], onNodeIdConflict?: (c: NodeIdConflict) => void) {
    const client = createClient({ servers, ...(onNodeIdConflict ? { onNodeIdConflict } : {}) });
    // One request at a time, alternating servers, until both have answered many times.
    const ids: bigint[] = [];
    for (let i = 0; i < 60; i++) ids.push(...(await client.nextIds(50)));
    const stats = client.stats();
    await client.close();
    return { ids, stats };
  }

  it('both run with node id 3: counted once and reported once, naming both addresses', async () => {
    const a = await startServer({ nodeId: 3 });
    const b = await startServer({ nodeId: 3 });
    try {
      const reported: NodeIdConflict[] = [];
      const { stats } = await askAlternately([a.endpoint, b.endpoint], (c) => reported.push(c));
      expect(stats.nodeIdConflicts).toBe(1);
      expect(reported).toHaveLength(1);
      expect(reported[0]!.nodeId).toBe(3);
      expect([...reported[0]!.servers].sort()).toEqual([a.endpoint, b.endpoint].sort());
    } finally {
      await a.stop();
      await b.stop();
    }
  });

  it('by default the conflict is a process warning with code HAILSTONE_NODE_ID_CONFLICT', async () => {
    const a = await startServer({ nodeId: 3 });
    const b = await startServer({ nodeId: 3 });
    const warnings: Error[] = [];
    const listener = (w: Error) => warnings.push(w);
    process.on('warning', listener);
    try {
      await askAlternately([a.endpoint, b.endpoint]);
      await new Promise((resolve) => setImmediate(resolve)); // warnings are emitted on the next tick
      const ours = warnings.filter((w) => (w as Error & { code?: string }).code === 'HAILSTONE_NODE_ID_CONFLICT');
      expect(ours).toHaveLength(1);
      expect(ours[0]!.message).toMatch(/both issued ids with node id 3 .*Give every server its own --node-id/);
    } finally {
      process.off('warning', listener);
      await a.stop();
      await b.stop();
    }
  });

  it('distinct node ids: no conflict', async () => {
    const a = await startServer({ nodeId: 3 });
    const b = await startServer({ nodeId: 4 });
    try {
      const { ids, stats } = await askAlternately([a.endpoint, b.endpoint], () => {
        throw new Error('no conflict expected');
      });
      expect(new Set(ids).size).toBe(ids.length);
      expect(stats.nodeIdConflicts).toBe(0);
    } finally {
      await a.stop();
      await b.stop();
    }
  });

  it('hailstone get against two servers with one node id: the duplicates printed once, one NODE_ID_CONFLICT line, exit 1', async () => {
    // Two servers of node id 0, each on a clock frozen at the same moment: both issue the
    // same ids in the same order, so duplicates are certain, not a matter of timing.
    const start = Date.now();
    const servers = await Promise.all([0, 1].map(() => frozenServer(start)));
    try {
      const [a, b] = servers.map((s) => s.endpoint);
      const r = await runCli(['get', '-n', '3000', '--server', a!, '--server', b!, '--timeout-ms', '10000']);
      expect(r.code).toBe(1);
      const lines = r.stdout.trim().split('\n');
      expect(lines.every((l) => /^\d+$/.test(l))).toBe(true);
      expect(new Set(lines).size).toBe(lines.length); // each id once
      expect(lines.length).toBeLessThan(3000); // some arrived twice
      const duplicates = 3000 - lines.length;
      expect(r.stderr.split('\n').filter((l) => l !== '')).toEqual([
        expect.stringMatching(new RegExp(`^hailstone: NODE_ID_CONFLICT: servers .* both issued ids with node id 0 .*Give every server its own --node-id; ${duplicates} id\\(s\\) arrived twice and were printed once$`)),
      ]);
    } finally {
      for (const s of servers) await s.stop();
    }
  });

  it('hailstone get against two servers with distinct node ids: exit 0, no warning', async () => {
    const a = await startServer({ nodeId: 0 });
    const b = await startServer({ nodeId: 1 });
    try {
      const r = await runCli(['get', '-n', '3000', '--server', a.endpoint, '--server', b.endpoint, '--timeout-ms', '10000']);
      expect(r).toMatchObject({ code: 0, stderr: '' });
      expect(new Set(r.stdout.trim().split('\n')).size).toBe(3000);
    } finally {
      await a.stop();
      await b.stop();
    }
  });
});
