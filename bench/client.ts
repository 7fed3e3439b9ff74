// Client benchmark: ids per second one Node process gets through createClient from a
// hailstone server in another process (loopback), and the client's CPU per id.
//
//   npm run bench:client          about 20 s; writes bench/results/client.json, then the
//                                 docs from it (npm run bench:report)
//
// Modes, same run, same server: sequential nextId() (one round trip per id), 64 concurrent
// nextId() (coalesced: the calls of one tick share a request) and the same without
// coalescing, nextIds(1490) (ten full requests per call), pooled nextId() and pooled
// takeId() (ids fetched ahead in batches; takeId falls back to nextId when the pool is
// empty). Each row has the client's CPU per id and the server's, from /proc, same window.

import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Client, createClient } from '../src/index.js';
import { ROOT, cpuSeconds } from './harness.js';
import { command, describeMachine, machine } from './machine.js';
import type { ClientResults, ClientRow } from './results.js';

const seconds = Number(process.env.HAILSTONE_BENCH_SECONDS ?? '3');
const output = process.env.HAILSTONE_BENCH_OUTPUT ?? join(ROOT, 'bench/results/client.json');
/** The server process, whose CPU each row reads. */
let serverPid = 0;

async function startServer(): Promise<{ child: ChildProcess; port: number; dir: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'hailstone-bench-client-'));
  const child = spawn(process.execPath, ['dist/cli/main.js', 'serve', '--port', '0', '--state-dir', dir, '--max-lead-ms', '2000'], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'ignore'],
  });
  let out = '';
  const port = await new Promise<number>((resolve, reject) => {
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /listening on udp:\/\/[^ ]+:(\d+)/.exec(out);
      if (m) resolve(Number(m[1]));
    });
    child.once('exit', (code) => reject(new Error(`the server exited (${code})`)));
  });
  return { child, port, dir };
}

/** Runs `step` (which returns how many ids it got) until `seconds` pass; counts ids, the client's CPU and the server's. */
async function measure(mode: string, client: Client, step: () => Promise<number>, parallel = 1): Promise<ClientRow> {
  const requestsBefore = client.stats().requests;
  const serverBefore = cpuSeconds(serverPid);
  const cpuBefore = process.cpuUsage();
  const started = performance.now();
  const until = started + seconds * 1000;
  let ids = 0;
  await Promise.all(
    Array.from({ length: parallel }, async () => {
      while (performance.now() < until) {
        const n = await step(); // not `ids += await step()`: that reads ids before the await
        ids += n;
      }
    }),
  );
  const elapsed = (performance.now() - started) / 1000;
  const cpu = process.cpuUsage(cpuBefore);
  return {
    mode,
    ids,
    seconds: elapsed,
    idsPerSec: ids / elapsed,
    clientCpuNsPerId: ((cpu.user + cpu.system) * 1000) / ids,
    serverCpuNsPerId: ((cpuSeconds(serverPid) - serverBefore) * 1e9) / ids,
    requests: client.stats().requests - requestsBefore,
  };
}

function fmt(n: number, digits = 0): string {
  return n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });
}

async function main(): Promise<void> {
  const m = machine();
  console.log(`hailstone client benchmark — ${describeMachine(m)}; ${seconds} s per mode, server in another process (native transport)\n`);
  const server = await startServer();
  serverPid = server.child.pid!;
  const endpoint = `127.0.0.1:${server.port}`;
  const rows: ClientRow[] = [];
  try {
    const plain = createClient({ servers: [endpoint] });
    await plain.nextIds(1000); // warm up both sides
    rows.push(await measure('sequential nextId()', plain, async () => (await plain.nextId(), 1)));
    rows.push(await measure('64 concurrent nextId()', plain, async () => (await plain.nextId(), 1), 64));
    const uncoalesced = createClient({ servers: [endpoint], coalesceMs: false });
    await uncoalesced.nextIds(10);
    rows.push(await measure('64 concurrent nextId(), coalesceMs: false', uncoalesced, async () => (await uncoalesced.nextId(), 1), 64));
    await uncoalesced.close();
    rows.push(await measure('nextIds(1490)', plain, async () => (await plain.nextIds(1490)).length));
    await plain.close();

    const pooled = createClient({ servers: [endpoint], pool: { size: 65_536, lowWater: 32_768 } });
    await pooled.nextId();
    rows.push(await measure('pooled nextId()', pooled, async () => (await pooled.nextId(), 1)));
    rows.push(
      await measure('pooled takeId()', pooled, async () => {
        // Synchronous while the pool has ids; await only when it ran dry.
        let n = 0;
        for (let i = 0; i < 1000; i++) {
          if (pooled.takeId() === undefined) {
            await pooled.nextId();
          }
          n++;
        }
        return n;
      }),
    );
    const poolStats = pooled.stats().pool;
    await pooled.close();
    console.log(`pool: ${poolStats?.refills} refills, ${poolStats?.dropped} ids dropped for age\n`);
  } finally {
    server.child.kill('SIGTERM');
    await new Promise((r) => server.child.once('exit', r));
    rmSync(server.dir, { recursive: true, force: true });
  }
  const sequential = rows[0]!.idsPerSec;
  console.table(
    rows.map((r) => ({
      mode: r.mode,
      'ids/s': fmt(r.idsPerSec),
      'vs sequential': fmt(r.idsPerSec / sequential, 1),
      'client CPU ns/id': fmt(r.clientCpuNsPerId),
      'server CPU ns/id': fmt(r.serverCpuNsPerId ?? NaN),
      'requests sent': fmt(r.requests),
    })),
  );
  const data: ClientResults = { machine: m, command: command('bench:client'), seconds, results: rows };
  writeFileSync(output, `${JSON.stringify(data, null, 2)}\n`);
  console.log(`\nwrote ${output}`);
}

await main();
