// Generator benchmark: hailstone's WASM and TypeScript backends and the npm peers, side by
// side in one run.
//
//   npm run bench                      full run (about a minute), writes bench/results/generator.json,
//                                      then the docs from it (npm run bench:report)
//   HAILSTONE_BENCH_QUICK=1 npm run bench   a few ms per task: proves the benchmark still works
//
// Part 1 (tinybench): cost per id. Each iteration makes thousands of ids so the timer's
// own overhead is spread thin. hailstone runs with a fast fake clock (one ms per 4096 ids,
// so the layout's cap of 4096 ids per ms never makes it wait or refuse) and with the real
// clock; the peers run through their normal API, which reads the real clock itself.
// Part 2: real clock, as fast as possible: ids per second as a share of the layout's cap,
// and duplicates among 10^6 consecutive ids (stored raw during the run, compared after it).
//
// Each group — hailstone wasm, hailstone ts, the peers — runs in a process of its own, one
// after the other, as an application using one of them would: sharing one process would
// make V8 see every implementation at the same call sites and slow them all.

import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Bench } from 'tinybench';
import { HailstoneError, createGenerator, type Backend, type Generator } from '../src/index.js';
import { command, describeMachine, machine } from './machine.js';
import { loadPeers } from './peers.js';
import type { CapRow, GeneratorResults, GeneratorRow } from './results.js';

const quick = process.env.HAILSTONE_BENCH_QUICK === '1';
const output = process.env.HAILSTONE_BENCH_OUTPUT ?? new URL('./results/generator.json', import.meta.url).pathname;

/** A clock that moves one ms per `idsPerMs / idsPerRead` readings, starting now. */
function fakeClock(idsPerRead: number): () => number {
  const readsPerMs = Math.max(1, Math.floor(4096 / idsPerRead));
  const start = Date.now();
  let reads = 0;
  return () => start + Math.floor(reads++ / readsPerMs);
}

function gen(backend: Backend, clock?: () => number, maxLeadMs?: number): Generator {
  return createGenerator({ nodeId: 7, backend, ...(clock ? { clock } : {}), ...(maxLeadMs === undefined ? {} : { maxLeadMs }) });
}

/** What a real-clock task did: calls made, ids issued, calls refused. */
interface Tally {
  calls: number;
  issued: number;
  refused: number;
}

interface Case {
  task: string;
  clock: 'fake' | 'real';
  /** Calls per iteration (each makes one id, unless a real-clock call is refused: see tally). */
  idsPerIteration: number;
  fn: () => void;
  tally?: Tally;
}

type Group = 'wasm' | 'ts' | 'peers';
const GROUPS: Group[] = ['wasm', 'ts', 'peers'];

function cases(group: Group): Case[] {
  const list: Case[] = [];
  const ids = 4096;
  let sink: unknown;
  for (const backend of group === 'peers' ? [] : [group]) {
    const g = gen(backend, fakeClock(1));
    list.push({ task: `hailstone ${backend} nextId()`, clock: 'fake', idsPerIteration: ids, fn: () => { for (let i = 0; i < ids; i++) sink = g.nextId(); } });
    const s = gen(backend, fakeClock(1));
    list.push({ task: `hailstone ${backend} nextIdString()`, clock: 'fake', idsPerIteration: ids, fn: () => { for (let i = 0; i < ids; i++) sink = s.nextIdString(); } });
    for (const batch of [1, 16, 128, 1024]) {
      const f = gen(backend, fakeClock(batch));
      const buf = Buffer.alloc(8 * batch);
      const calls = ids / batch;
      list.push({
        task: `hailstone ${backend} fill(${batch})`,
        clock: 'fake',
        idsPerIteration: ids,
        fn: () => { for (let i = 0; i < calls; i++) f.fill(buf, 0, batch); },
      });
      // Zero-copy: ids in a view of the generator's own output buffer.
      const v = gen(backend, fakeClock(batch));
      list.push({
        task: `hailstone ${backend} fillView(${batch})`,
        clock: 'fake',
        idsPerIteration: ids,
        fn: () => { for (let i = 0; i < calls; i++) sink = v.fillView(batch); },
      });
    }
  }
  for (const backend of group === 'peers' ? [] : [group]) {
    // Real clock: past 4096 ids in a ms the generator refuses (no lead to borrow from here,
    // so ids/s cannot pass the layout's cap); a refused call still costs its time and is not
    // an id, so ns per issued id grows when the cap is hit.
    const g = gen(backend, undefined, 0);
    const tally: Tally = { calls: 0, issued: 0, refused: 0 };
    list.push({
      task: `hailstone ${backend} nextId()`,
      clock: 'real',
      idsPerIteration: 1000,
      tally,
      fn: () => {
        for (let i = 0; i < 1000; i++) {
          tally.calls++;
          try {
            sink = g.nextId();
            tally.issued++;
          } catch (error) {
            if (!(error instanceof HailstoneError)) throw error;
            tally.refused++;
          }
        }
      },
    });
  }
  for (const peer of group === 'peers' ? loadPeers() : []) {
    const n = peer.name.startsWith('snowflake-id') ? 20 : 1000;
    const tally: Tally = { calls: 0, issued: 0, refused: 0 };
    list.push({
      task: peer.name,
      clock: 'real',
      idsPerIteration: n,
      tally,
      fn: () => {
        for (let i = 0; i < n; i++) {
          tally.calls++;
          try {
            sink = peer.next();
            tally.issued++;
          } catch {
            // flake-idgen throws when a ms's sequence is used up: a call that made no id.
            tally.refused++;
          }
        }
      },
    });
  }
  void sink;
  return list;
}

async function costPerId(group: Group): Promise<GeneratorRow[]> {
  const bench = new Bench({ time: quick ? 10 : 1000, warmupTime: quick ? 5 : 250 });
  const all = cases(group);
  for (const c of all) bench.add(`${c.task} [${c.clock}]`, c.fn);
  await bench.run();
  return bench.tasks.map((t, i) => {
    const c = all[i]!;
    const r = t.result as unknown as { latency: { mean: number; rme: number; samplesCount: number } };
    // Real clock: only the calls that issued an id count as ids.
    const issuedShare = c.tally === undefined || c.tally.calls === 0 ? 1 : c.tally.issued / c.tally.calls;
    const nsPerId = (r.latency.mean * 1e6) / (c.idsPerIteration * issuedShare);
    return {
      task: c.task,
      clock: c.clock,
      nsPerId,
      idsPerSec: 1e9 / nsPerId,
      rme: r.latency.rme,
      samples: r.latency.samplesCount,
      ...(c.tally === undefined ? {} : { calls: c.tally.calls, issued: c.tally.issued, refused: c.tally.refused }),
    };
  });
}

/** As many ids as possible with the real clock, for at least `minMs` and up to `count` ids. */
function realClockRun(task: string, next: () => unknown, key: (id: unknown) => unknown, cap: number, count: number, minMs: number, maxMs: number): CapRow {
  // The first `count` ids are kept raw and compared after the run: comparing during it
  // would time the comparison, not the generator. Bigint ids go into a BigInt64Array,
  // which copies their values: a million live BigInt objects would time the GC instead.
  const bigints = typeof next() === 'bigint';
  const kept: { [i: number]: unknown; length: number } = bigints ? new BigInt64Array(count) : new Array<unknown>(count);
  let ids = 0;
  let refusals = 0;
  // A window of whole clock ticks: it opens the moment Date.now() moves on and holds every
  // tick up to the one the last call ran in, so a generator that keeps to its clock cannot
  // issue more than its cap per ms times the window's ticks.
  const opened = Date.now();
  let start = opened;
  while (start === opened) start = Date.now();
  let now = start;
  while ((ids < count || now - start < minMs) && now - start < maxMs) {
    for (let i = 0; i < 256; i++) {
      let id: unknown;
      try {
        id = next();
      } catch {
        refusals++;
        continue;
      }
      if (ids < count) kept[ids] = id;
      ids++;
    }
    now = Date.now();
  }
  const elapsed = now - start + 1;
  const counted = Math.min(ids, count);
  const distinct = new Set<unknown>();
  for (let i = 0; i < counted; i++) distinct.add(key(kept[i]));
  // (BigInt64Array reads back as signed; ids keep the sign bit clear, so the values are equal.)
  const idsPerSec = ids / (elapsed / 1000);
  return { task, ids, seconds: elapsed / 1000, idsPerSec, shareOfCap: idsPerSec / cap, duplicates: counted - distinct.size, refusals };
}

function capRuns(group: Group): CapRow[] {
  const count = quick ? 10_000 : 1_000_000;
  const minMs = quick ? 20 : 2000;
  const maxMs = quick ? 200 : 25_000;
  if (group === 'peers') return loadPeers().map((peer) => realClockRun(peer.name, peer.next, peer.key, peer.cap, count, minMs, maxMs));
  // maxLeadMs 0: the generator keeps to its clock, so the row measures what the clock
  // allows and cannot exceed the layout's cap (a ms a GC pause swallows is lost for good).
  const g = createGenerator({ nodeId: 7, backend: group, maxLeadMs: 0 });
  const row = realClockRun(`hailstone ${group} nextId()`, () => g.nextId(), (id) => id, 4_096_000, count, minMs, maxMs);
  if (row.ids > 4096 * Math.round(row.seconds * 1000)) throw new Error(`${row.task}: ${row.ids} ids in ${row.seconds} s is more than the layout's 4096 per ms: the accounting is wrong`);
  return [row];
}

/** Runs one group in this process and prints its results as JSON. */
async function runGroup(group: Group): Promise<void> {
  const rows = await costPerId(group);
  const caps = capRuns(group);
  process.stdout.write(JSON.stringify({ rows, caps }));
}

/** Runs every group in a child process of its own, in turn. */
function runAllGroups(): { rows: GeneratorRow[]; caps: CapRow[] } {
  const rows: GeneratorRow[] = [];
  const caps: CapRow[] = [];
  for (const group of GROUPS) {
    const out = execFileSync(process.execPath, [...process.execArgv, fileURLToPath(import.meta.url), '--group', group], {
      env: process.env,
      maxBuffer: 16 * 1024 * 1024,
    });
    const result = JSON.parse(out.toString()) as { rows: GeneratorRow[]; caps: CapRow[] };
    rows.push(...result.rows);
    caps.push(...result.caps);
  }
  return { rows, caps };
}

function fmt(n: number, digits = 1): string {
  return n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });
}

async function main(): Promise<void> {
  const m = machine();
  console.log(`hailstone generator benchmark — ${describeMachine(m)}${quick ? ' (quick)' : ''}\n`);
  const { rows, caps } = runAllGroups();
  const base = rows.find((r) => r.task === 'hailstone ts nextId()' && r.clock === 'fake')!.nsPerId;
  console.table(
    rows.map((r) => ({
      task: r.task,
      clock: r.clock,
      'ns/id': fmt(r.nsPerId, 2),
      'ids/s': fmt(r.idsPerSec, 0),
      '± %': fmt(r.rme, 2),
      'vs ts nextId': fmt(r.nsPerId / base, 3),
    })),
  );
  console.log('\nreal clock, as fast as possible (hailstone with maxLeadMs 0), in a window of whole clock ticks; duplicates among the first 10^6 ids:');
  console.table(
    caps.map((c) => ({
      task: c.task,
      ids: c.ids,
      seconds: fmt(c.seconds, 2),
      'ids/s': fmt(c.idsPerSec, 0),
      'of cap %': fmt(100 * c.shareOfCap, 2),
      duplicates: c.duplicates,
      refusals: c.refusals,
    })),
  );
  const data: GeneratorResults = { machine: m, command: command('bench'), quick, results: rows, realClock: caps };
  writeFileSync(output, `${JSON.stringify(data, null, 2)}\n`);
  console.log(`\nwrote ${output}`);
}

const groupFlag = process.argv.indexOf('--group');
if (groupFlag >= 0) await runGroup(process.argv[groupFlag + 1] as Group);
else await main();
