
// Operating the service: metrics, health, rate limiting, key rotation, junk floods.

import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createClient, openNode, serve, type StorageFs } from '../src/index.js';
import type { NodeSnapshot } from '../src/server/health.js';
import { serveMetrics } from '../src/server/metrics.js';
import { realStorage } from '../src/node/storage.js';
import { requestSize, writeRequestHeader } from '../src/protocol/wire.js';
import { collectText, exited, readyPort, sleep, spawnCli, spawnFixture, waitFor } from './support/child.js';
import { TestEtcd, etcdInstalled, requireEtcd } from './support/etcd.js';
import { prng, testSeed } from './support/seed.js';
import { silent } from './support/logger.js';
import { Probe, startServer } from './support/udp.js';

const root = mkdtempSync(join(tmpdir(), 'hailstone-ops-'));
const packageVersion = (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version;
afterAll(() => rmSync(root, { recursive: true, force: true }));

function request(count = 1): Buffer {
  const b = Buffer.alloc(requestSize(count, false));
  writeRequestHeader(b, count, randomBytes(8), Date.now(), false);
  return b;
}

async function get(url: string): Promise<{ status: number; body: string }> {
  const res = await fetch(url);
  return { status: res.status, body: await res.text() };
}

/** The value of a Prometheus sample line, e.g. metric('hailstone_dropped_total{reason="malformed"}'). */
function metric(text: string, name: string): number {
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  if (line === undefined) throw new Error(`no ${name} in:\n${text}`);
  return Number(line.slice(name.length + 1));
}

describe('metrics and health', () => {
  it('/metrics counts requests, ids, replies and drops after traffic, plus process metrics', async () => {
    // A 1 s lead: a renewal delayed by a loaded machine must not make the node unhealthy here.
    const s = await startServer({ maxLeadMs: 1000, reservationMs: 1000 });
    const metrics = await serveMetrics('127.0.0.1', 0, async () => ({
      workers: [{ index: 0, stats: s.server.stats(), node: s.server.node.status() }],
      workerRestarts: 0,
      expectedWorkers: 1,
    }));
    const client = createClient({ servers: [s.endpoint] });
    await client.nextIds(300); // 3 requests: 149 + 149 + 2
    await client.nextId();
    const probe = await Probe.open();
    for (const junk of [Buffer.from('junk'), Buffer.alloc(30)]) await probe.send(junk, s.port);
    await probe.send(request(), s.port);
    expect(await probe.waitFor(1, 10_000)).toHaveLength(1); // answered before the scrape, however loaded the machine
    // A reply may carry fewer ids than asked (the client then asks again): count the client's requests.
    const requests = client.stats().requests + 1;
    const base = `http://127.0.0.1:${metrics.address.port}`;
    const { status, body } = await get(`${base}/metrics`);
    expect(status).toBe(200);
    expect(metric(body, 'hailstone_requests_total')).toBe(requests);
    expect(metric(body, 'hailstone_ids_served_total')).toBe(302);
    expect(metric(body, 'hailstone_replies_total{status="ok"}')).toBe(requests);
    expect(metric(body, 'hailstone_dropped_total{reason="malformed"}')).toBe(2);
    expect(metric(body, 'hailstone_dropped_total{reason="rate_limited"}')).toBe(0);
    expect(metric(body, 'hailstone_reply_send_failures_total')).toBe(0);
    // 7 datagrams arrived: as many receive calls with dgram, as few as one per burst with native.
    expect(metric(body, 'hailstone_receive_batches_total')).toBeGreaterThanOrEqual(1);
    expect(metric(body, 'hailstone_receive_batches_total')).toBeLessThanOrEqual(7);
    expect(metric(body, `hailstone_transport_info{transport="${s.server.stats().transport.name}"}`)).toBe(1);
    // Durations in seconds: the reservation reaches at most 1000 ms past the clock here.
    expect(metric(body, 'hailstone_reservation_remaining_seconds')).toBeGreaterThan(0);
    expect(metric(body, 'hailstone_reservation_remaining_seconds')).toBeLessThanOrEqual(1);
    expect(metric(body, 'hailstone_clock_lead_seconds')).toBeGreaterThanOrEqual(0);
    expect(body).not.toMatch(/^hailstone_\w+_ms[ {]/m);
    expect(metric(body, 'hailstone_healthy')).toBe(1);
    // Process metrics under the names prom-client's defaults give them everywhere.
    expect(body).toMatch(/^process_resident_memory_bytes \d+/m);
    expect(body).toMatch(/^nodejs_eventloop_lag_seconds /m);
    expect(body).not.toMatch(/^hailstone_(process|nodejs)_/m);
    expect(metric(body, 'hailstone_node_info{node_id="3",worker="0",cluster="",mode="local"}')).toBe(1);
    expect(metric(body, `hailstone_build_info{version="${packageVersion}"}`)).toBe(1);
    // Local mode: no fleet metrics at all, not even their HELP lines.
    expect(body).not.toMatch(/hailstone_fleet_|hailstone_etcd_/);
    expect((await get(`${base}/healthz`)).status).toBe(200);
    expect((await get(`${base}/nope`)).status).toBe(404);
    await client.close();
    await probe.close();
    await metrics.close();
    await s.stop();
  });

  it('/healthz turns 503 when the reservation cannot be renewed (disk full) and back to 200 after recovery', async () => {
    const stateDir = join(root, 'health');
    let full = false;
    const fs: StorageFs = {
      ...realStorage,
      openForWrite: async (path) => {
        const file = await realStorage.openForWrite(path);
        return {
          ...file,
          write: async (data) => {
            if (full) throw Object.assign(new Error('ENOSPC: no space left on device'), { code: 'ENOSPC' });
            return file.write(data);
          },
          sync: () => file.sync(),
          close: () => file.close(),
        };
      },
    };
    const node = await openNode({ nodeId: 2, stateDir, fs, maxLeadMs: 200, reservationMs: 100, logger: silent });
    const server = await serve({ node, port: 0, logger: silent });
    const snapshot = async (): Promise<NodeSnapshot> => ({
      workers: [{ index: 0, stats: server.stats(), node: node.status() }],
      workerRestarts: 0,
      expectedWorkers: 1,
    });
    const metrics = await serveMetrics('127.0.0.1', 0, snapshot);
    const healthz = `http://127.0.0.1:${metrics.address.port}/healthz`;
    // A 100 ms reservation on a loaded machine may be used up by the time the first request
    // comes (a slow first fsync): healthy once a renewal is through.
    let first = await get(healthz);
    for (let i = 0; i < 250 && first.status !== 200; i++) {
      await sleep(20);
      first = await get(healthz);
    }
    expect(first.status, first.body).toBe(200);

    full = true;
    let answer = await get(healthz);
    // Until the failing write is recorded, /healthz may first say only that the reservation
    // is not ahead of the clock: wait for the storage error itself.
    for (let i = 0; i < 250 && (answer.status === 200 || !/storage errors/.test(answer.body)); i++) {
      await sleep(20);
      answer = await get(healthz);
    }
    expect(answer.status).toBe(503);
    expect(JSON.parse(answer.body)).toMatchObject({ status: 'unhealthy' });
    expect(JSON.parse(answer.body).reason).toMatch(/storage errors .*ENOSPC/);
    const text = (await get(`http://127.0.0.1:${metrics.address.port}/metrics`)).body;
    expect(metric(text, 'hailstone_storage_errors_total')).toBeGreaterThan(0);
    expect(metric(text, 'hailstone_healthy')).toBe(0);

    full = false;
    for (let i = 0; i < 100 && answer.status === 503; i++) {
      await sleep(20);
      answer = await get(healthz);
    }
    expect(answer.status).toBe(200);
    await metrics.close();
    await server.close();
    await node.close();
  });
});

describe('abuse resistance', () => {
  it('rate limiting per source: a flood from one source is cut to its budget, another source is still answered', async () => {
    const s = await startServer({ rateLimit: { perSecond: 20, burst: 5 } });
    const flooder = await Probe.open();
    for (let i = 0; i < 60; i++) await flooder.send(request(), s.port);
    // Another source asks after the flood, on the same server socket: once it is answered,
    // all 60 were handled, and the flooder's replies were sent before its one. Another
    // address, since the budget is per source address: a second port of 127.0.0.1 would
    // share the flooder's empty bucket.
    const other = await Probe.open(0, '127.0.0.2');
    const marker = request();
    await other.send(marker, s.port);
    await other.replyTo(marker);
    expect(flooder.replies.length).toBeGreaterThanOrEqual(5);
    expect(flooder.replies.length).toBeLessThan(15);
    const stats = s.server.stats();
    expect(stats.dropped.rate_limited).toBe(60 - flooder.replies.length);
    expect(stats.replies.ok).toBe(flooder.replies.length + 1);
    await flooder.close();
    await other.close();
    await s.stop();
  });

  it('several keys during a rotation: clients with either key are answered, others are not', async () => {
    const [oldKey, newKey] = [randomBytes(32), randomBytes(32)];
    const s = await startServer({ keys: [oldKey, newKey] });
    for (const key of [oldKey, newKey]) {
      const client = createClient({ servers: [s.endpoint], key });
      expect((await client.nextIds(3)).length).toBe(3);
      await client.close();
    }
    const stranger = createClient({ servers: [s.endpoint], key: randomBytes(32), deadlineMs: 300, timeoutMs: 100 });
    await expect(stranger.nextId()).rejects.toMatchObject({ code: 'TIMEOUT' });
    await stranger.close();
    await s.stop();
  });

  it('a junk flood while clients run: the server stays up, clients keep getting ids, memory stays bounded', { timeout: 120_000 }, async () => {
    const datagrams = Number(process.env.HAILSTONE_FLOOD_DATAGRAMS ?? '100000');
    const random = prng(testSeed('junk-flood'));
    const child = spawnCli(['serve', '--port', '0', '--state-dir', join(root, 'flood'), '--max-lead-ms', '300', '--metrics', '127.0.0.1:0']);
    const out = collectText(child.stdout!);
    const err = collectText(child.stderr!);
    const done = exited(child);
    const port = await readyPort(child, out, err);
    const metricsPort = Number(/"metrics":"http:\/\/127\.0\.0\.1:(\d+)"/.exec(err.text())?.[1]);
    const rss = () => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'))![1]) / 1024;
    const rssBefore = rss();

    const client = createClient({ servers: [`127.0.0.1:${port}`], deadlineMs: 5000 });
    let stop = false;
    let served = 0;
    const legit = (async () => {
      while (!stop) {
        served += (await client.nextIds(10)).length;
        await sleep(5);
      }
    })();
    const flood = spawnFixture('junk-flood.ts', [String(port), String(datagrams), String(Math.floor(random() * 2 ** 31))]);
    const floodOut = collectText(flood.stdout!);
    expect(await exited(flood)).toBe(0);
    expect(floodOut.text()).toBe(`sent ${datagrams}\n`);
    const servedDuringFlood = served;
    // The legitimate client keeps getting ids once the flood is over.
    await waitFor(() => served > servedDuringFlood || undefined, { what: 'ids after the flood' });
    stop = true;
    await legit;
    const text = (await get(`http://127.0.0.1:${metricsPort}/metrics`)).body;
    const dropped = metric(text, 'hailstone_dropped_total{reason="malformed"}');
    console.log(
      `junk flood: ${datagrams} datagrams (${dropped} reached the server and were dropped), ` +
        `${servedDuringFlood} ids served during it, ${served} in all, RSS ${rssBefore.toFixed(1)} → ${rss().toFixed(1)} MiB, client ${JSON.stringify(client.stats())}`,
    );
    // The flood really reached the server: the kernel drops what the receive queue cannot
    // hold, so how much arrives depends on the transport and the machine's load (the dgram
    // transport under a parallel test run on 2 cores sees under half of it).
    expect(dropped).toBeGreaterThan(datagrams * 0.25);
    expect(servedDuringFlood).toBeGreaterThan(0);
    expect(rss() - rssBefore).toBeLessThan(100);
    expect(child.exitCode).toBeNull();
    await client.close();
    child.kill('SIGTERM');
    expect(await done).toBe(0);
  });
});

describe('metrics across workers', () => {
  it('--workers 2 --metrics: the endpoint reports the whole node', { timeout: 60_000 }, async () => {
    const child = spawnCli(['serve', '--port', '0', '--state-dir', join(root, 'cluster'), '--workers', '2', '--max-lead-ms', '300', '--metrics', '127.0.0.1:0']);
    const out = collectText(child.stdout!);
    const err = collectText(child.stderr!);
    const done = exited(child);
    const port = await readyPort(child, out, err);
    const metricsPort = Number(/"metrics":"http:\/\/127\.0\.0\.1:(\d+)"/.exec(err.text())?.[1]);
    const client = createClient({ servers: [`127.0.0.1:${port}`] });
    for (let i = 0; i < 50; i++) await client.nextId();
    const text = (await get(`http://127.0.0.1:${metricsPort}/metrics`)).body;
    expect(metric(text, 'hailstone_workers')).toBe(2);
    expect(metric(text, 'hailstone_requests_total')).toBe(client.stats().requests);
    expect(metric(text, 'hailstone_ids_served_total')).toBe(50);
    expect((await get(`http://127.0.0.1:${metricsPort}/healthz`)).status).toBe(200);
    await client.close();
    child.kill('SIGTERM');
    expect(await done).toBe(0);
  });
});

requireEtcd();

describe.skipIf(!etcdInstalled)('metrics in fleet mode (real etcd)', () => {
  let etcd: TestEtcd;
  beforeAll(async () => {
    etcd = await TestEtcd.start();
  });
  afterAll(async () => {
    await etcd?.stop();
  });

  it('--etcd --workers 2: the fleet metrics, and node_info naming the claimed node id, the cluster and mode="fleet" per worker', { timeout: 60_000 }, async () => {
    const child = spawnCli(['serve', '--etcd', etcd.endpoint, '--cluster', 'ops', '--port', '0', '--workers', '2', '--max-lead-ms', '300', '--metrics', '127.0.0.1:0']);
    const out = collectText(child.stdout!);
    const err = collectText(child.stderr!);
    const done = exited(child);
    await readyPort(child, out, err);
    const nodeId = Number(/ node=(\d+) /.exec(out.text())![1]);
    const metricsPort = Number(/"metrics":"http:\/\/127\.0\.0\.1:(\d+)"/.exec(err.text())?.[1]);
    const text = (await get(`http://127.0.0.1:${metricsPort}/metrics`)).body;
    expect(metric(text, 'hailstone_fleet_node_id')).toBe(nodeId);
    expect(metric(text, 'hailstone_fleet_claims_total')).toBe(1);
    expect(metric(text, 'hailstone_fleet_lease_ttl_seconds')).toBe(10);
    expect(metric(text, 'hailstone_etcd_request_duration_seconds_count')).toBeGreaterThan(0);
    for (const worker of ['0', '1']) {
      expect(metric(text, `hailstone_node_info{node_id="${nodeId}",worker="${worker}",cluster="ops",mode="fleet"}`)).toBe(1);
    }
    child.kill('SIGTERM');
    expect(await done).toBe(0);
  });
});
