// Server benchmark on the wire (loopback only, bounded): hailstone serve over each
// transport (dgram, and the batched native one) against two bare echo servers answering
// datagrams of the same sizes, in the same run: Node's dgram (bench/echo-server.mjs), and
// C with recvmmsg/sendmmsg (bench/mmsg-echo.c, compiled here with cc when there is one) —
// the floor of a batched server on this machine, with no Node and no id logic.
//
//   npm run bench:udp                 about a minute; writes bench/results/udp.json, then the
//                                     docs from it (npm run bench:report)
//   HAILSTONE_BENCH_QUICK=1 npm run bench:udp        a short smoke run
//   HAILSTONE_BENCH_SOAK_REQUESTS=10000000 HAILSTONE_BENCH_OUTPUT=bench/results/udp-soak.json npm run bench:udp
//                                     adds a memory soak run (the docs' soak table reads udp-soak.json)
//
// The closed-loop ("max") rows are loaded by a C load generator (bench/mmsg-load.c,
// compiled here: 4 sockets × 64 requests outstanding, sendmmsg/recvmmsg), which validates
// every reply and counts duplicates among all ids received — a Node load thread saturates
// before the native server does. Where there is no C compiler (or with
// HAILSTONE_BENCH_LOAD=node) the Node load worker (worker threads of this process) is used,
// and each row says which load generator produced it. Fixed-rate rows always use the Node
// worker (it schedules an open loop). The server's CPU time per request comes from the
// kernel's accounting of the server processes (/proc/PID/stat), so it does not depend on
// the load generator sharing the machine.

import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { nativeAvailability } from '../src/server/native-addon.js';
import { type Etcd, type Started, ROOT, buildC, cpuSeconds, processTree, startEtcd, startProcess } from './harness.js';
import { command, describeMachine, machine } from './machine.js';
import type { HailstoneTransport, ServerKind, UdpResults, UdpRow } from './results.js';

const quick = process.env.HAILSTONE_BENCH_QUICK === '1';
const output = process.env.HAILSTONE_BENCH_OUTPUT ?? join(ROOT, 'bench/results/udp.json');
const soakRequests = Number(process.env.HAILSTONE_BENCH_SOAK_REQUESTS ?? '0');
const durationMs = Number(process.env.HAILSTONE_BENCH_SECONDS ?? (quick ? '0.5' : '5')) * 1000;
const warmupMs = quick ? 200 : 1000;
// HAILSTONE_BENCH_PIN=1: servers on CPU 0, the C load generator on CPU 1 (taskset), so the
// two do not share a core. Cluster workers inherit the server's CPU.
const pin = process.env.HAILSTONE_BENCH_PIN === '1';
/** taskset to one CPU when pinning, else nothing. */
const pinTo = (cpu: number): string[] => (pin ? ['taskset', '-c', String(cpu)] : []);

function startHailstone(workers: number, transport: HailstoneTransport, etcdEndpoint?: string): Promise<Started> {
  const dir = mkdtempSync(join(tmpdir(), 'hailstone-bench-'));
  // Fleet mode: node id and reservations from etcd, no state dir.
  const where = etcdEndpoint === undefined ? ['--state-dir', dir] : ['--etcd', etcdEndpoint, '--cluster', `bench-${Date.now()}`];
  return startProcess(
    process.execPath,
    // A 200 ms lead: ids/s then measures the sustained rate (borrowing ahead of the clock adds
    // at most 200 ms worth to a 5 s run), and a new state directory's first start waits 200 ms.
    // A smoke run takes 1 s: on a machine starved by other work, renewals of a 200 ms
    // reservation fall behind and a 0.3 s row sees only UNAVAILABLE — true, but not what the
    // smoke run checks.
    ['dist/cli/main.js', 'serve', '--port', '0', ...where, '--workers', String(workers), '--max-lead-ms', quick ? '1000' : '200', '--reservation-ms', quick ? '500' : '200', '--transport', transport],
    /listening on udp:\/\/[^ ]+:(\d+)/,
    { cleanup: () => rmSync(dir, { recursive: true, force: true }), wrap: pinTo(0) },
  );
}

let etcd: Etcd | undefined;

function startEcho(workers: number): Promise<Started> {
  return startProcess(process.execPath, ['bench/echo-server.mjs', '--workers', String(workers)], /echo listening on (\d+)/, { wrap: pinTo(0) });
}

let mmsgEcho: string | undefined;
let mmsgLoad: string | undefined;

/** What the C generator prints: a LoadResult, and what only it checks. */
interface CLoadResult extends LoadResult {
  unavailable: number;
  invalid: number;
  idsChecked: number;
  duplicates: number;
}

/** Closed-loop load from the C generator; onWindowStart fires when its warmup ends. */
function cLoad(port: number, count: number, echo: boolean, ms: number, onWindowStart?: () => void): Promise<CLoadResult> {
  const loadArgs = [String(port), String(count), '4', '64', String(warmupMs), String(ms), ...(echo ? ['echo'] : [])];
  const child = pin
    ? spawn('taskset', ['-c', '1', mmsgLoad!, ...loadArgs], { stdio: ['ignore', 'pipe', 'pipe'] })
    : spawn(mmsgLoad!, loadArgs, { stdio: ['ignore', 'pipe', 'pipe'] });
  const timer = setTimeout(() => onWindowStart?.(), warmupMs);
  let out = '';
  let err = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  return new Promise((resolve, reject) => {
    child.once('exit', (code) => {
      clearTimeout(timer);
      if (code !== 0) return reject(new Error(`mmsg-load exited (${code}): ${err}`));
      resolve(JSON.parse(out) as CLoadResult);
    });
  });
}

/** Resident memory of the process tree, MiB. */
function rssMiB(pid: number): number {
  let kb = 0;
  for (const p of processTree(pid)) {
    try {
      kb += Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${p}/status`, 'utf8'))?.[1] ?? 0);
    } catch {
      // exited
    }
  }
  return kb / 1024;
}

interface LoadResult {
  requests: number;
  replies: number;
  ids: number;
  lost: number;
  seconds: number;
  p50us: number;
  p99us: number;
  p999us: number;
}

// One thread by default: on a 2-core machine more would take CPU from the server measured.
const LOAD_THREADS = Number(process.env.HAILSTONE_BENCH_LOAD_THREADS ?? '1');

/**
 * Load from LOAD_THREADS worker threads (bench/udp-load-worker.mjs), each keeping
 * `window` requests outstanding on each of `sockets` sockets for `ms` after a warmup that
 * is not counted, or until `maxReplies` replies in all. `count` ids per request.
 */
async function load(
  port: number,
  count: number,
  opts: { sockets: number; window: number; ms: number; maxReplies?: number; rate?: number; onWindowStart?: () => void },
): Promise<LoadResult> {
  const startAt = Date.now() + 100;
  const results = await Promise.all(
    Array.from({ length: LOAD_THREADS }, (_, i) => {
      const worker = new Worker(new URL('./udp-load-worker.mjs', import.meta.url), {
        workerData: {
          port,
          count,
          sockets: opts.sockets,
          window: opts.window,
          warmupMs,
          durationMs: opts.ms,
          maxReplies: opts.maxReplies === undefined ? undefined : Math.ceil(opts.maxReplies / LOAD_THREADS),
          rate: opts.rate === undefined ? undefined : opts.rate / LOAD_THREADS,
          startAt,
        },
      });
      return new Promise<{ requests: number; replies: number; ids: number; lost: number; seconds: number; latencies: Float64Array }>(
        (resolve, reject) => {
          worker.on('message', (m: { type: string }) => {
            if (m.type === 'measuring' && i === 0) opts.onWindowStart?.();
            if (m.type === 'done') resolve(m as never);
          });
          worker.on('error', reject);
        },
      );
    }),
  );
  const latencies = Float64Array.from(results.flatMap((r) => Array.from(r.latencies))).sort();
  const pct = (p: number) => (latencies.length === 0 ? NaN : latencies[Math.min(latencies.length - 1, Math.floor((p / 100) * latencies.length))]! * 1000);
  const sum = (f: (r: (typeof results)[number]) => number) => results.reduce((a, r) => a + f(r), 0);
  return {
    requests: sum((r) => r.requests),
    replies: sum((r) => r.replies),
    ids: sum((r) => r.ids),
    lost: sum((r) => r.lost),
    seconds: Math.max(...results.map((r) => r.seconds)),
    p50us: pct(50),
    p99us: pct(99),
    p999us: pct(99.9),
  };
}

/**
 * One row. A quick (smoke) row is a fraction of a second: on a machine busy with other work
 * it can end before the load generator's first reply, which says nothing about the server.
 * Such a row runs once more, saying so; a full run keeps what it measured.
 */
async function scenario(...args: Parameters<typeof scenarioOnce>): Promise<UdpRow> {
  const row = await scenarioOnce(...args);
  if (!quick || row.requestsPerSec > 0) return row;
  console.warn(`  ${args[0]} ${args[1]} ${args[4]}: no reply within the ${durationMs} ms window (a busy machine?); running the row once more`);
  return scenarioOnce(...args);
}

async function scenarioOnce(
  server: ServerKind,
  transport: HailstoneTransport,
  workers: number,
  count: number,
  mode: string,
  maxReplies?: number,
  rate?: number,
  fleet = false,
): Promise<UdpRow> {
  const started =
    server === 'hailstone'
      ? await startHailstone(workers, transport, fleet ? etcd!.endpoint : undefined)
      : server === 'echo'
        ? await startEcho(workers)
        : await startProcess(mmsgEcho!, [], /echo listening on (\d+)/, { wrap: pinTo(0) });
  const pid = started.child.pid!;
  let cpuStart = 0;
  let rssStart = 0;
  let txnsStart: Promise<number> | undefined;
  let windowStart = 0;
  const onWindowStart = () => {
    cpuStart = cpuSeconds(pid);
    rssStart = rssMiB(pid);
    windowStart = Date.now();
    if (fleet) txnsStart = etcd!.txns();
  };
  try {
    // The C generator for closed loops where it built; the Node worker otherwise (and for
    // fixed rates and soaks). Both report the same counts; only the C one checks ids.
    const useC = mmsgLoad !== undefined && rate === undefined && maxReplies === undefined;
    const c = useC ? await cLoad(started.port, count, server !== 'hailstone', durationMs, onWindowStart) : undefined;
    const result: LoadResult =
      c ??
      (await load(started.port, count, {
        sockets: 4,
        window: rate === undefined ? 32 : 512,
        ms: maxReplies === undefined ? durationMs : 3_600_000,
        ...(maxReplies === undefined ? {} : { maxReplies }),
        ...(rate === undefined ? {} : { rate }),
        onWindowStart,
      }));
    const cpu = cpuSeconds(pid) - cpuStart;
    const etcdTxnsPerSec = fleet ? ((await etcd!.txns()) - (await txnsStart!)) / ((Date.now() - windowStart) / 1000) : undefined;
    return {
      server,
      loadGenerator: c === undefined ? 'node' : 'C',
      ...(fleet ? { fleet, etcdTxnsPerSec } : {}),
      ...(c !== undefined && server === 'hailstone' ? { duplicates: c.duplicates, idsChecked: c.idsChecked } : {}),
      ...(c === undefined ? {} : { invalidReplies: c.invalid, unavailableReplies: c.unavailable }),
      transport,
      mode,
      workers,
      requestsPerSec: result.replies / result.seconds,
      idsPerSec: server === 'hailstone' ? result.ids / result.seconds : 0,
      lossPercent: result.requests === 0 ? 0 : (100 * result.lost) / result.requests,
      p50us: result.p50us,
      p99us: result.p99us,
      p999us: result.p999us,
      serverCpuUsPerRequest: result.replies === 0 ? NaN : (cpu * 1e6) / result.replies,
      rssStartMiB: rssStart,
      rssEndMiB: rssMiB(pid),
      replies: result.replies,
    };
  } finally {
    await started.stop();
  }
}

function nameOf(row: UdpRow): string {
  return row.server === 'echo' ? 'dgram echo' : row.server === 'mmsg-echo' ? 'C mmsg echo' : `hailstone ${row.transport}${row.fleet ? ' (fleet)' : ''}`;
}

function fmt(n: number, digits = 1): string {
  return Number.isFinite(n) ? n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits }) : '—';
}

async function main(): Promise<void> {
  const m = machine();
  console.log(`hailstone UDP benchmark — ${describeMachine(m)}${quick ? ' (quick)' : ''}${pin ? ' — servers pinned to CPU 0, C load to CPU 1' : ''}`);
  console.log(
    `loopback; fixed-rate rows: load from ${LOAD_THREADS} Node thread(s), 4 sockets × 512 outstanding; max rows: ` +
      `${process.env.HAILSTONE_BENCH_LOAD === 'node' ? 'the Node thread, 4 sockets × 32' : 'the C generator (bench/mmsg-load.c) where it builds, 4 sockets × 64'}; ` +
      `${durationMs / 1000} s per run after ${warmupMs / 1000} s warmup\n`,
  );
  const rows: UdpRow[] = [];
  // Closed loop (every reply sends the next request) measures the most each server answers;
  // a fixed rate (open loop) loads both servers alike, which is what makes their CPU per
  // request comparable: under a closed loop, a server's latency changes how many datagrams
  // each wakeup handles, and with it the CPU per request.
  const rate = Number(process.env.HAILSTONE_BENCH_RATE ?? '25000');
  const allModes: [workers: number, count: number, mode: string, rate?: number][] = [
    [1, 1, 'single id (32 B), max'],
    [1, 1, `single id (32 B), ${rate / 1000}k req/s`, rate],
    [1, 128, 'batch of 128 (1048 B), max'],
    [1, 128, `batch of 128 (1048 B), ${rate / 1000}k req/s`, rate],
    [2, 1, 'single id (32 B), max'],
  ];
  // A quick run (the test suite's smoke run) keeps one of each kind: a closed loop, a fixed
  // rate with batches, and two workers.
  const modes = quick ? allModes.filter((_, i) => i === 0 || i === 3 || i === 4) : allModes;
  mmsgEcho = buildC('mmsg-echo', 'no C echo baseline');
  mmsgLoad = process.env.HAILSTONE_BENCH_LOAD === 'node' ? undefined : buildC('mmsg-load', 'no C load generator, using the Node one');
  const native = nativeAvailability();
  if (!native.available) console.log(`(no native transport rows: ${native.reason})`);
  // Each mode: the dgram echo, hailstone over dgram, hailstone over the native transport,
  // and (one process only) the C echo.
  for (const [workers, count, mode, r] of modes) {
    const servers: [ServerKind, HailstoneTransport][] = [['echo', 'dgram'], ['hailstone', 'dgram']];
    if (native.available) servers.push(['hailstone', 'native']);
    if (workers === 1 && mmsgEcho !== undefined) servers.push(['mmsg-echo', 'native']);
    for (const [server, transport] of servers) {
      const row = await scenario(server, transport, workers, count, mode, undefined, r);
      rows.push(row);
      console.log(
        `  ${nameOf(row)} ${mode}, ${workers} worker(s): ${fmt(row.requestsPerSec, 0)} req/s, ${fmt(row.serverCpuUsPerRequest, 2)} µs CPU/req` +
          (row.duplicates === undefined ? '' : `, ${row.duplicates} duplicates in ${fmt(row.idsChecked ?? 0, 0)} ids`) +
          ` (${row.loadGenerator} load)`,
      );
    }
  }
  // Fleet mode next to local mode, same run: renewals are etcd transactions off the hot path.
  etcd = await startEtcd();
  if (etcd !== undefined) {
    try {
      const transport: HailstoneTransport = native.available ? 'native' : 'dgram';
      const mode = 'single id (32 B), max';
      // Run-to-run noise on a small VM is larger than the difference sought: interleave three
      // pairs and keep the median run of each (by requests/s).
      const locals: UdpRow[] = [];
      const fleets: UdpRow[] = [];
      for (let i = 0; i < (quick ? 1 : 3); i++) {
        locals.push(await scenario('hailstone', transport, 1, 1, `${mode}, local vs fleet`));
        fleets.push(await scenario('hailstone', transport, 1, 1, `${mode}, local vs fleet`, undefined, undefined, true));
      }
      const median = (list: UdpRow[]) => [...list].sort((a, b) => a.requestsPerSec - b.requestsPerSec)[Math.floor(list.length / 2)]!;
      const local = median(locals);
      const fleetRow = median(fleets);
      rows.push(local, fleetRow);
      console.log(
        `  fleet vs local (${transport}, median of ${locals.length} interleaved pairs): ${fmt(fleetRow.requestsPerSec, 0)} vs ${fmt(local.requestsPerSec, 0)} req/s ` +
          `(${fmt((100 * fleetRow.requestsPerSec) / local.requestsPerSec - 100, 1)}%; runs: local ${locals.map((r) => fmt(r.requestsPerSec, 0)).join(', ')}; ` +
          `fleet ${fleets.map((r) => fmt(r.requestsPerSec, 0)).join(', ')}), ${fmt(fleetRow.etcdTxnsPerSec ?? NaN, 1)} etcd txns/s`,
      );
    } finally {
      await etcd.stop();
    }
  }
  if (soakRequests > 0) {
    for (const transport of native.available ? (['dgram', 'native'] as const) : (['dgram'] as const)) {
      console.log(`\nsoak: hailstone ${transport}, single id until ${soakRequests} replies…`);
      rows.push(await scenario('hailstone', transport, 1, 1, `soak ${soakRequests} requests`, soakRequests));
    }
  }
  const cpuOf = (server: string, transport: string, workers: number, mode: string) =>
    rows.find((r) => r.server === server && r.transport === transport && r.workers === workers && r.mode === mode)?.serverCpuUsPerRequest ?? NaN;
  console.log();
  console.table(
    rows.map((r) => ({
      server: nameOf(r),
      mode: r.mode,
      workers: r.workers,
      'req/s': fmt(r.requestsPerSec, 0),
      'ids/s': r.server === 'hailstone' ? fmt(r.idsPerSec, 0) : '',
      'loss %': fmt(r.lossPercent, 3),
      'p50 µs': fmt(r.p50us, 0),
      'p99 µs': fmt(r.p99us, 0),
      'p999 µs': fmt(r.p999us, 0),
      'CPU µs/req': fmt(r.serverCpuUsPerRequest, 2),
      'vs echo': r.server === 'hailstone' ? fmt(r.serverCpuUsPerRequest / cpuOf('echo', 'dgram', r.workers, r.mode), 2) : '',
      'vs dgram': r.server === 'hailstone' && r.transport === 'native' ? fmt(r.serverCpuUsPerRequest / cpuOf('hailstone', 'dgram', r.workers, r.mode), 2) : '',
      'vs C echo': r.server === 'hailstone' && r.transport === 'native' ? fmt(r.serverCpuUsPerRequest / cpuOf('mmsg-echo', 'native', r.workers, r.mode), 2) : '',
      'RSS MiB': `${fmt(r.rssStartMiB)} → ${fmt(r.rssEndMiB)}`,
      'etcd txn/s': r.etcdTxnsPerSec === undefined ? '' : fmt(r.etcdTxnsPerSec, 1),
      load: r.loadGenerator,
      unavail: r.unavailableReplies === undefined ? '' : fmt(r.unavailableReplies, 0),
      dups: r.duplicates === undefined ? '' : `${r.duplicates} / ${fmt(r.idsChecked ?? 0, 0)}`,
    })),
  );
  const data: UdpResults = { machine: m, command: command('bench:udp'), quick, pinned: pin, durationMs, results: rows };
  writeFileSync(output, `${JSON.stringify(data, null, 2)}\n`);
  console.log(`\nwrote ${output}`);
}

await main();
