// Two servers started with one node id (a configuration error local mode cannot prevent):
// the client notices from the ids, counts it and says so once per pair; a node id that
// moved from one server to another is not a conflict.

import { describe, expect, it } from 'vitest';
import { createClient, type NodeIdConflict } from '../src/index.js';
import { NodeIdConflictDetector } from '../src/client/conflicts.js';
import { runCli } from './support/child.js';
import { startServer } from './support/udp.js';

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

  it('hailstone get against two servers with one node id prints a warning on stderr, and the ids', async () => {
    const a = await startServer({ nodeId: 5 });
    const b = await startServer({ nodeId: 5 });
    try {
      // Enough ids for many requests across both servers.
      const r = await runCli(['get', '-n', '20000', '--server', a.endpoint, '--server', b.endpoint]);
      expect(r.code).toBe(0);
      expect(r.stdout.trim().split('\n')).toHaveLength(20000);
      expect(r.stderr).toMatch(/^hailstone: warning: NODE_ID_CONFLICT: servers .* both issued ids with node id 5 /m);
    } finally {
      await a.stop();
      await b.stop();
    }
  });
});
