// Ids over HTTP, loaded by wrk (keep-alive, one thread, 64 connections), in one run:
//
//   node:http  a constant body       the ceiling for Node on this machine (bench/http-bare.mjs):
//                                    the same answer as /v1/id, headers and body length
//   hailstone  GET /v1/id            one id per request (hailstone serve --http); these two
//                                    in three alternating rounds, the best of each kept
//   node:http, hailstone  the same two after a full GC between the first answer and the
//                                    load: what that history costs a Node HTTP server, and
//                                    hailstone's start-up warm-up against it (see start())
//   Flask      GET /                 the seed: str(snowflake id) under gunicorn, one worker
//                                    (bench/flask_seed.py)
//   hailstone  GET /v1/ids?count=4096   ids per second in batches
//   hailstone  GET /v1/id, --workers 2  the same on every core (one port, two workers)
//
//   npm run bench:http               about a minute; writes bench/results/http.json, then the
//                                    docs from it (npm run bench:report)
//   HAILSTONE_BENCH_QUICK=1 npm run bench:http        a short smoke run
//
// One server is measured at a time, each after a short warm-up, so the servers never
// share the machine's work with each other, only with wrk. The server's CPU per request comes from the
// kernel's accounting of its process tree (/proc/PID/stat utime + stime) over the measured
// window; hailstone's ids per second from its own /metrics (ids actually sent), not from
// requests × count. wrk, python3-flask and gunicorn are Debian packages: installed here
// when missing and running as root, as .ci/run installs etcd.

import { type ChildProcess, execFileSync, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { get as httpGet } from 'node:http';
import { join } from 'node:path';
import { ROOT, cpuSeconds, freeTcpPort } from './harness.js';
import { command, describeMachine, machine } from './machine.js';
import type { HttpResults, HttpRow } from './results.js';

const quick = process.env.HAILSTONE_BENCH_QUICK === '1';
const output = process.env.HAILSTONE_BENCH_OUTPUT ?? join(ROOT, 'bench/results/http.json');
const seconds = Number(process.env.HAILSTONE_BENCH_SECONDS ?? (quick ? '1' : '10'));
const warmupSeconds = quick ? 1 : 2;
/** Rounds of bare node:http and hailstone /v1/id, alternating; the best of each is the row. */
const rounds = quick ? 1 : 3;
const CONNECTIONS = 64;
const BATCH = 4096;
/** The rows measured after a full GC between the server's first answer and its load. */
const GC_HISTORY = 'full GC after the first answer';
const GC_HISTORY_ROUTE = `constant body, ${GC_HISTORY}`;
/** What `hailstone serve` prints once it serves ids (after its first start's wait). */
const READY_LINE = /hailstone listening on udp:\/\//;

function installed(program: string, args: string[]): boolean {
  return spawnSync(program, args, { stdio: 'ignore' }).status === 0;
}

/** wrk, Flask and gunicorn from Debian, where they are missing and this runs as root. */
function ensurePackages(): void {
  const missing = [
    // wrk --version exits 1 after printing its version: only a missing program is an error.
    ...(spawnSync('wrk', ['--version'], { stdio: 'ignore' }).error === undefined ? [] : ['wrk']),
    ...(installed('python3', ['-c', 'import flask']) ? [] : ['python3-flask']),
    ...(installed('gunicorn', ['--version']) ? [] : ['gunicorn']),
  ];
  if (missing.length === 0) return;
  if (process.getuid?.() !== 0) throw new Error(`bench:http needs ${missing.join(', ')}: apt-get install -y ${missing.join(' ')}`);
  console.log(`installing ${missing.join(' ')}`);
  const install = () => spawnSync('apt-get', ['install', '-y', ...missing], { stdio: 'ignore' }).status === 0;
  if (!install()) {
    spawnSync('apt-get', ['update'], { stdio: 'ignore' });
    if (!install()) throw new Error(`apt-get install -y ${missing.join(' ')} failed`);
  }
}


interface Running {
  child: ChildProcess;
  stop(): Promise<void>;
}

/**
 * Starts a server and resolves once `url` answers 200 `inARow` times in a row, each on a
 * connection of its own (with workers, node:cluster hands connections round robin: every
 * worker has then answered, none is still in its first start) — and wrk has warmed it up.
 *
 * Every server gets the same history: no request until it says it serves (`readyLine` on
 * stdout), then its first answers, then load at once. A Node 20 HTTP server that runs a full
 * GC between its first request and its load serves every later request about a third
 * slower, for the rest of its life, whoever wrote the handler (bench/http-gc-history.mjs
 * measures it on the bare server); a server probed while it starts (hailstone's first start
 * waits one lead) and left idle while the other is measured would be measured in that state
 * and the other not.
 */
async function start(program: string, args: string[], url: string, options: { env?: Record<string, string>; inARow?: number; readyLine?: RegExp; gcAfterFirst?: boolean } = {}): Promise<Running> {
  const child = spawn(program, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...options.env } });
  let err = '';
  let out = '';
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  const stop = () =>
    new Promise<void>((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) return resolve();
      const killer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      child.once('exit', () => {
        clearTimeout(killer);
        resolve();
      });
      child.kill('SIGTERM');
    });
  const until = Date.now() + 30_000;
  const fail = async (why: string): Promise<never> => {
    await stop();
    throw new Error(`${program} ${why} within 30 s: ${err}`);
  };
  while (options.readyLine !== undefined && !options.readyLine.test(out)) {
    if (child.exitCode !== null) throw new Error(`${program} ${args.join(' ')} exited (${child.exitCode}): ${err}`);
    if (Date.now() > until) await fail(`did not print ${options.readyLine}`);
    await new Promise((r) => setTimeout(r, 20));
  }
  let ok = 0;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`${program} ${args.join(' ')} exited (${child.exitCode}): ${err}`);
    try {
      ok = (await get(url)).status === 200 ? ok + 1 : 0;
      if (ok >= (options.inARow ?? 1)) break;
      if (ok > 0) continue;
    } catch {
      ok = 0; // not listening yet
    }
    if (Date.now() > until) await fail(`did not answer ${url}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  if (options.gcAfterFirst === true) {
    // One full GC now (bench/gc-on-signal.cjs), then a moment for it to run.
    child.kill('SIGUSR2');
    await new Promise((r) => setTimeout(r, 300));
  }
  wrk(url, warmupSeconds);
  return { child, stop };
}

interface WrkResult {
  requests: number;
  seconds: number;
  requestsPerSec: number;
  p50us: number;
  p99us: number;
  non2xx: number;
  socketErrors: number;
}

function micros(text: string): number {
  const m = /^([\d.]+)(us|ms|s)$/.exec(text);
  if (m === null) return NaN;
  return Number(m[1]) * (m[2] === 'us' ? 1 : m[2] === 'ms' ? 1000 : 1e6);
}

function wrk(url: string, duration: number): WrkResult {
  const out = execFileSync('wrk', ['-t1', `-c${CONNECTIONS}`, `-d${duration}s`, '--latency', url], { encoding: 'utf8' });
  const done = /(\d+) requests in ([\d.]+)(ms|s|m)/.exec(out);
  const errors = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  const seconds = done === null ? NaN : Number(done[2]) * (done[3] === 'ms' ? 0.001 : done[3] === 'm' ? 60 : 1);
  return {
    requests: Number(done?.[1] ?? NaN),
    seconds,
    requestsPerSec: Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1] ?? NaN),
    p50us: micros(/\n\s+50%\s+(\S+)/.exec(out)?.[1] ?? ''),
    p99us: micros(/\n\s+99%\s+(\S+)/.exec(out)?.[1] ?? ''),
    non2xx: Number(/Non-2xx or 3xx responses: (\d+)/.exec(out)?.[1] ?? 0),
    socketErrors: errors === null ? 0 : errors.slice(1).reduce((a, n) => a + Number(n), 0),
  };
}

/** GET on a connection of its own (no pooled keep-alive connection the server may have closed while wrk ran). */
function get(url: string): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    httpGet(url, { agent: false }, (res) => {
      let text = '';
      res.setEncoding('utf8').on('data', (c: string) => (text += c)).on('end', () => resolve({ status: res.statusCode ?? 0, text }));
    }).on('error', reject);
  });
}

/** hailstone's count of ids sent over HTTP, from its /metrics. */
async function idsServed(metricsUrl: string): Promise<number> {
  const { text } = await get(metricsUrl);
  return Number(/^hailstone_http_ids_served_total (\d+)$/m.exec(text)?.[1] ?? NaN);
}

/** Warms `url` up, then measures it with wrk and the server's CPU over the window. */
async function measure(server: string, route: string, url: string, pid: number, idsPerRequest: number, metricsUrl?: string): Promise<HttpRow> {
  wrk(url, warmupSeconds);
  const idsBefore = metricsUrl === undefined ? 0 : await idsServed(metricsUrl);
  const cpuBefore = cpuSeconds(pid);
  const r = wrk(url, seconds);
  const cpu = cpuSeconds(pid) - cpuBefore;
  const ids = metricsUrl === undefined ? r.requests * idsPerRequest : (await idsServed(metricsUrl)) - idsBefore;
  const row: HttpRow = {
    server,
    route,
    connections: CONNECTIONS,
    requests: r.requests,
    requestsPerSec: r.requestsPerSec,
    idsPerSec: ids / r.seconds,
    serverCpuUsPerRequest: (cpu * 1e6) / r.requests,
    p50us: r.p50us,
    p99us: r.p99us,
    non2xx: r.non2xx,
    socketErrors: r.socketErrors,
  };
  console.log(
    `${server.padEnd(10)} ${route.padEnd(22)} ${Math.round(row.requestsPerSec).toLocaleString('en-US').padStart(9)} req/s ` +
      `${Math.round(row.idsPerSec).toLocaleString('en-US').padStart(11)} ids/s  CPU ${row.serverCpuUsPerRequest.toFixed(1)} µs/req  ` +
      `p50 ${row.p50us} µs p99 ${row.p99us} µs  non-2xx ${row.non2xx}, socket errors ${row.socketErrors}`,
  );
  return row;
}

/** The round with the most requests/s, noting every round's. */
function best(rows: HttpRow[]): HttpRow {
  const top = rows.reduce((a, b) => (b.requestsPerSec > a.requestsPerSec ? b : a));
  return { ...top, roundsPerSec: rows.map((r) => r.requestsPerSec) };
}

async function main(): Promise<void> {
  ensurePackages();
  const m = machine();
  const wrkVersion = (spawnSync('wrk', ['--version'], { encoding: 'utf8' }).stdout ?? '').split('\n')[0]!.replace(/ Copyright.*$/, '').trim();
  console.log(`machine: ${describeMachine(m)}; ${wrkVersion}; wrk -t1 -c${CONNECTIONS} -d${seconds}s, keep-alive`);
  const rows: HttpRow[] = [];
  const state = mkdtempSync(join(tmpdir(), 'hailstone-bench-http-'));
  try {
    // The bare node:http server (the ceiling) and hailstone's /v1/id in alternating rounds,
    // the best of each kept: on a shared VM a neighbour's burst then costs one round, not
    // the comparison. Both run throughout; the one not measured is idle.
    const barePort = await freeTcpPort();
    const bareUrl = `http://127.0.0.1:${barePort}/`;
    const port = await freeTcpPort();
    const base = `http://127.0.0.1:${port}`;
    const bare = await start(process.execPath, [join(ROOT, 'bench/http-bare.mjs')], bareUrl, { env: { PORT: String(barePort) }, readyLine: /listening/ });
    try {
      const hailstone = await start(
        process.execPath,
        [join(ROOT, 'dist/cli/main.js'), 'serve', '--port', '0', '--state-dir', state, '--http', String(port), '--metrics', String(port), '--log-level', 'warn'],
        `${base}/v1/id`,
        { readyLine: READY_LINE },
      );
      try {
        const bareRounds: HttpRow[] = [];
        const singleRounds: HttpRow[] = [];
        for (let round = 0; round < rounds; round++) {
          bareRounds.push(await measure('node:http', 'constant body', bareUrl, bare.child.pid!, 1));
          singleRounds.push(await measure('hailstone', 'GET /v1/id', `${base}/v1/id`, hailstone.child.pid!, 1, `${base}/metrics`));
        }
        rows.push(best(bareRounds), best(singleRounds));
        // The other history: one full GC between the first answer and the load (an idle Node
        // process's memory reducer runs one within seconds), for both servers.
        const gcFlags = ['--expose-gc', '--require', join(ROOT, 'bench/gc-on-signal.cjs')];
        const gcPort = await freeTcpPort();
        const gcUrl = `http://127.0.0.1:${gcPort}/`;
        const bareAfterGc = await start(process.execPath, [...gcFlags, join(ROOT, 'bench/http-bare.mjs')], gcUrl, { env: { PORT: String(gcPort) }, readyLine: /listening/, gcAfterFirst: true });
        try {
          rows.push(await measure('node:http', GC_HISTORY_ROUTE, gcUrl, bareAfterGc.child.pid!, 1));
        } finally {
          await bareAfterGc.stop();
        }
        const hsGcPort = await freeTcpPort();
        const hsGcBase = `http://127.0.0.1:${hsGcPort}`;
        const hailstoneAfterGc = await start(
          process.execPath,
          [...gcFlags, join(ROOT, 'dist/cli/main.js'), 'serve', '--port', '0', '--state-dir', join(state, 'after-gc'), '--http', String(hsGcPort), '--metrics', String(hsGcPort), '--log-level', 'warn'],
          `${hsGcBase}/v1/id`,
          { readyLine: READY_LINE, gcAfterFirst: true },
        );
        try {
          rows.push(await measure('hailstone', `GET /v1/id, ${GC_HISTORY}`, `${hsGcBase}/v1/id`, hailstoneAfterGc.child.pid!, 1, `${hsGcBase}/metrics`));
        } finally {
          await hailstoneAfterGc.stop();
        }
        // Batches: ids per second, bounded by the layout's cap of 4,096 ids per ms.
        rows.push(await measure('hailstone', `GET /v1/ids?count=${BATCH}`, `${base}/v1/ids?count=${BATCH}`, hailstone.child.pid!, BATCH, `${base}/metrics`));
      } finally {
        await hailstone.stop();
      }
    } finally {
      await bare.stop();
    }
    // Two workers on the one port (node:cluster hands the connections round robin), each
    // answering from its own stripe; /metrics on a port of its own (the primary's).
    {
      const port = await freeTcpPort();
      const metricsPort = await freeTcpPort();
      const base = `http://127.0.0.1:${port}`;
      const workers = await start(
        process.execPath,
        [join(ROOT, 'dist/cli/main.js'), 'serve', '--port', '0', '--state-dir', join(state, 'workers'), '--workers', '2', '--http', String(port), '--metrics', String(metricsPort), '--log-level', 'warn'],
        `${base}/v1/id`,
        { inARow: 10, readyLine: READY_LINE },
      );
      try {
        rows.push(await measure('hailstone', 'GET /v1/id (--workers 2)', `${base}/v1/id`, workers.child.pid!, 1, `http://127.0.0.1:${metricsPort}/metrics`));
      } finally {
        await workers.stop();
      }
    }
    // The Flask seed under gunicorn, one (sync) worker.
    {
      const port = await freeTcpPort();
      const url = `http://127.0.0.1:${port}/`;
      const s = await start('gunicorn', ['--workers', '1', '--bind', `127.0.0.1:${port}`, '--chdir', join(ROOT, 'bench'), '--log-level', 'warning', 'flask_seed:app'], url);
      try {
        rows.push(await measure('Flask', 'GET / (gunicorn, 1 worker)', url, s.child.pid!, 1));
      } finally {
        await s.stop();
      }
    }
  } finally {
    rmSync(state, { recursive: true, force: true });
  }
  const results: HttpResults = { machine: m, command: command('bench:http'), ...(quick ? { quick } : {}), seconds, connections: CONNECTIONS, wrk: wrkVersion, results: rows };
  writeFileSync(output, `${JSON.stringify(results, null, 2)}\n`);
  console.log(`wrote ${output}`);
}

await main();
