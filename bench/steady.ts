// A healthy node under steady full load must never refuse. One `hailstone serve
// --transport native` process under the C closed-loop generator's full rate (bench/
// mmsg-load.c: 4 sockets × 64 outstanding, single ids, every id checked), in three
// conditions where nothing is wrong but everything is slow:
//   (a) neighbours: a process doing fsync'd 4 KiB writes on the same file system without
//       pause, and another burning a CPU;
//   (b) every fsync and fdatasync of the server delayed by 100 ms (strace fault injection):
//       network block storage at its p99.9;
//   (c) fleet mode, with every fsync of etcd delayed by 100 ms: etcd on a slow disk.
// Reported per condition: replies, UNAVAILABLE (by the server's own reason), duplicates,
// RTT p50/p99/p99.9 (from the generator), the event loop's lag and the renewal writes'
// mean time (from /metrics). Target: 0 UNAVAILABLE and 0 duplicates in all three.
//
//   npm run bench:steady             60 s per condition; writes bench/results/steady.json, then
//                                    the docs from it (npm run bench:report)
//   HAILSTONE_BENCH_QUICK=1 npm run bench:steady      3 s per condition

import { type ChildProcess, execFile, execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { type LoadCounts, ROOT, type Started, buildC, freeTcpPort, startEtcd, startProcess } from './harness.js';
import { command, describeMachine, machine } from './machine.js';
import type { ServerView, SteadyResults, SteadyRow } from './results.js';
import { steadyTable } from './tables.js';

const quick = process.env.HAILSTONE_BENCH_QUICK === '1';
const output = process.env.HAILSTONE_BENCH_OUTPUT ?? join(ROOT, 'bench/results/steady.json');
const seconds = Number(process.env.HAILSTONE_BENCH_SECONDS ?? (quick ? '3' : '60'));
const only = process.env.HAILSTONE_BENCH_CONDITIONS?.split(',');
const SLOW_FSYNC = ['strace', '-f', '-qq', '-o', '/dev/null', '--seccomp-bpf', '-e', 'trace=fsync,fdatasync', '-e', 'inject=fsync,fdatasync:delay_exit=100000'];

function hasStrace(): boolean {
  try {
    execFileSync('strace', ['-V'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** A neighbour that writes 4 KiB and fsyncs it, over and over, in `dir`. */
function fsyncNeighbour(dir: string): ChildProcess {
  const script = `const fs=require('fs');const f=fs.openSync(${JSON.stringify(join(dir, 'neighbour'))},'w');const b=Buffer.alloc(4096,1);let i=0;for(;;){fs.writeSync(f,b,0,b.length,(i++%256)*4096);fs.fsyncSync(f);}`;
  return spawn(process.execPath, ['-e', script], { stdio: 'ignore' });
}

function cpuBurner(): ChildProcess {
  return spawn(process.execPath, ['-e', 'for(;;){}'], { stdio: 'ignore' });
}

/** The server's own view, from its /metrics. */
async function scrape(port: number): Promise<ServerView> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  const value = (re: RegExp) => Number(re.exec(text)?.[1] ?? NaN);
  const refusals: Record<string, number> = {};
  for (const m of text.matchAll(/^hailstone_refusals_total\{reason="(\w+)"\} (\d+)/gm)) if (Number(m[2]) > 0) refusals[m[1]!] = Number(m[2]);
  const sum = value(/^hailstone_reservation_write_duration_seconds_sum ([\d.e+-]+)/m);
  const count = value(/^hailstone_reservation_write_duration_seconds_count (\d+)/m);
  return {
    refusals,
    loopLagP99Ms: value(/^nodejs_eventloop_lag_p99_seconds ([\d.e+-]+)/m) * 1000,
    loopLagMaxMs: value(/^nodejs_eventloop_lag_max_seconds ([\d.e+-]+)/m) * 1000,
    renewalMeanMs: count > 0 ? (sum / count) * 1000 : 0,
    renewals: count,
  };
}


const m = machine();
console.log(`hailstone steady load — ${describeMachine(m)}${quick ? ' (quick)' : ''}; ${seconds} s per condition after 1 s warmup, C closed loop 4 × 64`);
const loader = buildC('mmsg-load', 'no C load generator');
if (loader === undefined) throw new Error('bench:steady needs a C compiler (cc) for its load generator');
const strace = hasStrace();
if (!strace) console.log('(no strace: conditions (b) and (c) are skipped; apt-get install strace)');

const conditions: { name: string; key: string; start: (metricsPort: number) => Promise<{ server: Started; extra: () => Promise<void> }> }[] = [
  {
    key: 'a',
    name: '(a) neighbours: fsync\'d writes on the same file system, a CPU burner',
    start: async (metricsPort) => {
      const dir = mkdtempSync(join(tmpdir(), 'hailstone-steady-'));
      const neighbours = [fsyncNeighbour(dir), cpuBurner()];
      const server = await startProcess(process.execPath, ['dist/cli/main.js', 'serve', '--port', '0', '--state-dir', join(dir, 'data'), '--transport', 'native', '--metrics', `127.0.0.1:${metricsPort}`], /listening on udp:\/\/[^ ]+:(\d+)/);
      return {
        server,
        extra: async () => {
          for (const n of neighbours) n.kill('SIGKILL');
          rmSync(dir, { recursive: true, force: true });
        },
      };
    },
  },
  ...(strace
    ? [
        {
          key: 'b',
          name: '(b) every fsync of the server +100 ms',
          start: async (metricsPort: number) => {
            const dir = mkdtempSync(join(tmpdir(), 'hailstone-steady-'));
            const server = await startProcess(process.execPath, ['dist/cli/main.js', 'serve', '--port', '0', '--state-dir', dir, '--transport', 'native', '--metrics', `127.0.0.1:${metricsPort}`], /listening on udp:\/\/[^ ]+:(\d+)/, {
              wrap: SLOW_FSYNC,
            });
            return { server, extra: async () => rmSync(dir, { recursive: true, force: true }) };
          },
        },
        {
          key: 'c',
          name: '(c) fleet mode, every fsync of etcd +100 ms',
          start: async (metricsPort: number) => {
            const etcd = await startEtcd(SLOW_FSYNC);
            if (etcd === undefined) throw new Error('condition (c) needs etcd (apt-get install etcd-server)');
            const server = await startProcess(
              process.execPath,
              ['dist/cli/main.js', 'serve', '--port', '0', '--etcd', etcd.endpoint, '--cluster', `steady-${Date.now()}`, '--transport', 'native', '--metrics', `127.0.0.1:${metricsPort}`],
              /listening on udp:\/\/[^ ]+:(\d+)/,
            );
            return { server, extra: () => etcd.stop() };
          },
        },
      ]
    : []),
];

const rows: SteadyRow[] = [];
for (const c of conditions.filter((c) => only === undefined || only.includes(c.key))) {
  console.log(`${c.name} …`);
  const metricsPort = await freeTcpPort();
  const { server, extra } = await c.start(metricsPort);
  try {
    // The smoke run (npm test) asks for a light load: other test files share the machine.
    const [sockets, window] = (process.env.HAILSTONE_BENCH_WINDOW ?? '4x64').split('x');
    const { stdout } = await promisify(execFile)(loader, [String(server.port), '1', sockets!, window!, '1000', String(seconds * 1000)], { maxBuffer: 1 << 20 });
    const result = JSON.parse(stdout) as LoadCounts;
    rows.push({ condition: c.name, ...result, server: await scrape(metricsPort) });
  } finally {
    await server.stop();
    await extra();
  }
}

const data: SteadyResults = { machine: m, command: command('bench:steady'), quick, seconds, results: rows };
console.log(steadyTable({ 'steady.json': data }));
writeFileSync(output, `${JSON.stringify(data, null, 2)}\n`);
