// The markdown that docs/benchmarks.md and the README quote from bench/results/*.json:
// every table, and the few headline sentences that must agree with them. Each region is
// rendered from the results files alone, with the command, machine and Node version that
// produced them, so regenerating the docs from the same files gives the same text.

import { type Machine, describeMachine } from './machine.js';
import type { FleetScaleRow, GeneratorResults, GeneratorRow, Results, ResultsFile, SteadyResults, UdpResults, UdpRow } from './results.js';

export type Doc = 'docs/benchmarks.md' | 'docs/fleet.md' | 'README.md';

export interface Region {
  /** The name its markers carry. */
  id: string;
  doc: Doc;
  /** The results files it reads, named in its markers and its source line. */
  sources: ResultsFile[];
  /** Tables say where they come from above them; sentences below them, to read on. */
  sourceAt: 'above' | 'below';
  body: (results: Results) => string;
}

/** The layout's cap: 4096 ids per ms from one node. */
const CAP_IDS_PER_SEC = 4_096_000;

/**
 * The command behind each results file, for files written before the scripts recorded
 * theirs. The pinned and soak files are bench:udp runs written to a file of their own.
 */
const COMMANDS: Record<ResultsFile, string> = {
  'generator.json': 'npm run bench',
  'udp.json': 'npm run bench:udp',
  'udp-pinned.json': 'HAILSTONE_BENCH_OUTPUT=bench/results/udp-pinned.json HAILSTONE_BENCH_PIN=1 npm run bench:udp',
  'udp-soak.json': 'HAILSTONE_BENCH_OUTPUT=bench/results/udp-soak.json HAILSTONE_BENCH_SOAK_REQUESTS=10000000 npm run bench:udp',
  'client.json': 'npm run bench:client',
  'import.json': 'npm run bench:import',
  'steady.json': 'npm run bench:steady',
  'latency.json': 'npm run bench:latency',
  'http.json': 'npm run bench:http',
  'fleet-scale.json': 'npm run bench:fleet-scale',
  'fleet-sim.json': 'npm run sim:scale',
};

// ---- formatting ----

const int = (n: number): string => (Number.isFinite(n) ? Math.round(n).toLocaleString('en-US') : '—');
const fixed = (n: number, digits: number): string =>
  Number.isFinite(n) ? n.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits }) : '—';
const ratio = (n: number): string => fixed(n, 2);
const significant = (n: number): string => (Number.isFinite(n) ? n.toLocaleString('en-US', { maximumSignificantDigits: 3 }) : '—');
/** Millions with `digits` decimals, below a million the count itself. */
const millions = (n: number, digits: number): string => (n >= 1e6 ? `${fixed(n / 1e6, digits)} M` : int(n));
/** A latency in µs: below a millisecond in µs, above in ms. */
const latency = (us: number): string => (us >= 1000 ? `${(us / 1000).toFixed(2)} ms` : `${us.toFixed(0)} µs`);
const ms = (us: number): string => `${(us / 1000).toFixed(2)} ms`;
const NUMBER_WORDS = ['no', 'one', 'two', 'three', 'four', 'five'];

/** "hailstone wasm nextId()" → "hailstone wasm `nextId()`". */
const method = (task: string): string => task.replace(/ (\S+\(\S*\))$/, ' `$1`');
/** Every call in a mode as code: "64 concurrent `nextId()`", "`nextIds(1490)`". */
const calls = (mode: string): string => mode.replace(/(\w+\(\d*\))/g, '`$1`');
/** A peer by its package name alone. */
const packageName = (task: string): string => task.replace(/ \S+\(\S*\)$/, '');
const isHailstone = (task: string): boolean => task.startsWith('hailstone');

function table(header: string[], align: ('l' | 'r')[], rows: string[][]): string {
  const line = (cells: string[]) => `| ${cells.join(' | ')} |`;
  return [line(header), `|${align.map((a) => (a === 'r' ? '---:' : '---')).join('|')}|`, ...rows.map(line)].join('\n');
}

// ---- where a region's figures come from ----

function commandOf(results: Results, file: ResultsFile): string {
  return results[file].command ?? COMMANDS[file];
}

const machineWithoutDate = (m: Machine): string => describeMachine(m).replace(/, [^,]*$/, '');

/** "Command: `…`. Machine: …." — for several files, one command each and the machine once if they share it. */
export function sourceLine(results: Results, files: ResultsFile[]): string {
  const quick = files.some((f) => results[f].quick === true) ? ' Quick run: it shows the benchmark works, not what it measures.' : '';
  if (files.length === 1) {
    const file = files[0]!;
    return `Command: \`${commandOf(results, file)}\`. Machine: ${describeMachine(results[file].machine)}.${quick}`;
  }
  const machines = new Set(files.map((f) => machineWithoutDate(results[f].machine)));
  if (machines.size === 1) {
    const each = files.map((f) => `\`${commandOf(results, f)}\` (${results[f].machine.date})`);
    return `Commands: ${each.join(', ')}. Machine: ${[...machines][0]}.${quick}`;
  }
  return `Commands: ${files.map((f) => `\`${commandOf(results, f)}\` on ${describeMachine(results[f].machine)}`).join('; ')}.${quick}`;
}

// ---- generator ----

function generatorRow(data: GeneratorResults, task: string, clock: 'fake' | 'real'): GeneratorRow | undefined {
  return data.results.find((r) => r.task === task && r.clock === clock);
}

function generatorCost(results: Results): string {
  const data = results['generator.json'];
  const base = generatorRow(data, 'hailstone ts nextId()', 'fake')?.nsPerId ?? NaN;
  // Real-clock rows count ids issued; their refused calls are shown where the file has them.
  const tallied = data.results.some((r) => r.calls !== undefined);
  return table(
    ['task', 'clock', 'ns/id', '± %', 'vs ts `nextId()`', ...(tallied ? ['calls refused'] : [])],
    ['l', 'l', 'r', 'r', 'r', ...(tallied ? (['r'] as const) : [])],
    data.results.map((r) => [
      method(r.task),
      r.clock,
      fixed(r.nsPerId, 2),
      fixed(r.rme, 1),
      significant(r.nsPerId / base),
      ...(tallied ? [r.calls === undefined || r.refused === undefined ? '' : `${fixed((100 * r.refused) / r.calls, 1)}%`] : []),
    ]),
  );
}

function generatorRealClock(results: Results): string {
  return table(
    ['implementation', 'ids/s', 'of its cap', 'duplicates in 10^6', 'refusals'],
    ['l', 'r', 'r', 'r', 'r'],
    results['generator.json'].realClock.map((c) => [
      isHailstone(c.task) ? method(c.task) : packageName(c.task),
      int(c.idsPerSec),
      `${fixed(100 * c.shareOfCap, 2)}%`,
      int(c.duplicates),
      int(c.refusals),
    ]),
  );
}

/** Each backend's faster batch path (`fill` or `fillView`) at each batch size. */
function batchPaths(data: GeneratorResults): { size: number; wasm?: GeneratorRow; ts?: GeneratorRow }[] {
  const sizes = [...new Set(data.results.flatMap((r) => /^hailstone \w+ fill(?:View)?\((\d+)\)$/.exec(r.task)?.[1] ?? []).map(Number))].sort((a, b) => a - b);
  const fastest = (backend: string, size: number) =>
    data.results
      .filter((r) => r.clock === 'fake' && (r.task === `hailstone ${backend} fill(${size})` || r.task === `hailstone ${backend} fillView(${size})`))
      .sort((a, b) => a.nsPerId - b.nsPerId)[0];
  return sizes.map((size) => ({ size, wasm: fastest('wasm', size), ts: fastest('ts', size) }));
}

const pathName = (row: GeneratorRow | undefined): string => (row === undefined ? '—' : `${fixed(row.nsPerId, 2)} ns (\`${/(fill(?:View)?)\(/.exec(row.task)![1]}\`)`);

function generatorBatches(results: Results): string {
  return table(
    ['ids per call', 'WASM, faster path', 'TypeScript, faster path', 'WASM / TypeScript'],
    ['r', 'r', 'r', 'r'],
    batchPaths(results['generator.json']).map(({ size, wasm, ts }) => [
      String(size),
      pathName(wasm),
      pathName(ts),
      `${ratio((wasm?.nsPerId ?? NaN) / (ts?.nsPerId ?? NaN))}×`,
    ]),
  );
}

function readmeGenerator(results: Results): string {
  const data = results['generator.json'];
  const ns = (n: number | undefined) => (n === undefined ? '—' : n < 10 ? fixed(n, 2) : int(n));
  const duplicates = (task: string) => {
    const run = data.realClock.find((c) => c.task === task);
    return run === undefined ? '—' : int(run.duplicates);
  };
  const fake = (task: string) => generatorRow(data, task, 'fake')?.nsPerId;
  const peers = data.results.filter((r) => !isHailstone(r.task)).sort((a, b) => a.nsPerId - b.nsPerId);
  return table(['', 'ns per id', 'duplicates in 10^6 (real clock)'], ['l', 'r', 'r'], [
    ['hailstone wasm `fillView(1024)` / `fill(128)`', `${ns(fake('hailstone wasm fillView(1024)'))} / ${ns(fake('hailstone wasm fill(128)'))}`, duplicates('hailstone wasm nextId()')],
    ['hailstone wasm `nextId()`', ns(fake('hailstone wasm nextId()')), duplicates('hailstone wasm nextId()')],
    ['hailstone ts `nextId()`', ns(fake('hailstone ts nextId()')), duplicates('hailstone ts nextId()')],
    ...peers.map((r) => [packageName(r.task), ns(r.nsPerId), duplicates(r.task)]),
  ]);
}

// ---- server on the wire ----

const serverName = (r: UdpRow): string =>
  r.server === 'echo' ? 'dgram echo' : r.server === 'mmsg-echo' ? 'C mmsg echo' : `hailstone ${r.transport}${r.fleet ? ' (fleet)' : ''}`;
/** "single id (32 B), max" → "single id, max". */
const modeName = (mode: string): string => mode.replace(/ \([^)]*\)/, '');
const isSoak = (r: UdpRow): boolean => r.mode.startsWith('soak');
const isSingleMax = (r: UdpRow): boolean => r.mode.startsWith('single id') && r.mode.includes('max');
const isLocalVsFleet = (r: UdpRow): boolean => r.mode.includes('local vs fleet');

/** The row of `server` over `transport` under the same load as `like`. */
function peerRow(data: UdpResults, like: UdpRow, server: UdpRow['server'], transport: UdpRow['transport']): UdpRow | undefined {
  return data.results.find((r) => r.server === server && r.transport === transport && r.workers === like.workers && r.mode === like.mode && !r.fleet);
}

function cpuRatio(data: UdpResults, row: UdpRow, server: UdpRow['server'], transport: UdpRow['transport']): string {
  const other = peerRow(data, row, server, transport);
  return other === undefined ? '' : ratio(row.serverCpuUsPerRequest / other.serverCpuUsPerRequest);
}

const checked = (r: UdpRow): string => (r.duplicates === undefined ? '' : `${r.duplicates} / ${int(r.idsChecked ?? NaN)}`);
const rss = (r: UdpRow): string => `${fixed(r.rssStartMiB, 1)} → ${fixed(r.rssEndMiB, 1)}`;

function udpServers(results: Results): string {
  const data = results['udp.json'];
  return table(
    ['server', 'mode', 'procs', 'load', 'req/s', 'ids/s', 'p50 µs', 'p99 µs', 'CPU µs/req', 'vs dgram echo', 'native vs hailstone dgram', 'native vs C echo', 'duplicates / ids checked', 'etcd txn/s', 'RSS MiB'],
    ['l', 'l', 'r', 'l', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'l'],
    data.results
      .filter((r) => !isSoak(r))
      .map((r) => {
        const hailstone = r.server === 'hailstone';
        const native = hailstone && r.transport === 'native';
        const cpu = fixed(r.serverCpuUsPerRequest, 2);
        return [
          serverName(r),
          modeName(r.mode),
          String(r.workers),
          r.loadGenerator ?? '',
          int(r.requestsPerSec),
          hailstone ? int(r.idsPerSec) : '',
          int(r.p50us),
          int(r.p99us),
          // The default server: native transport, local state.
          native && !r.fleet ? `**${cpu}**` : cpu,
          hailstone ? cpuRatio(data, r, 'echo', 'dgram') : '',
          native ? cpuRatio(data, r, 'hailstone', 'dgram') : '',
          native ? cpuRatio(data, r, 'mmsg-echo', 'native') : '',
          checked(r),
          r.etcdTxnsPerSec === undefined ? '' : fixed(r.etcdTxnsPerSec, 1),
          rss(r),
        ];
      }),
  );
}

function udpPinned(results: Results): string {
  const data = results['udp-pinned.json'];
  return table(
    ['server', 'procs', 'req/s', 'CPU µs/req', 'duplicates / ids checked'],
    ['l', 'r', 'r', 'r', 'r'],
    data.results
      .filter(isSingleMax)
      .map((r) => [`${serverName(r)}${isLocalVsFleet(r) && !r.fleet ? ' (local, pair)' : ''}`, String(r.workers), int(r.requestsPerSec), fixed(r.serverCpuUsPerRequest, 2), checked(r)]),
  );
}

function udpSoak(results: Results): string {
  return table(
    ['transport', 'replies', 'req/s', 'CPU µs/req', 'RSS at start → end of the run'],
    ['l', 'r', 'r', 'r', 'l'],
    results['udp-soak.json'].results.filter(isSoak).map((r) => [r.transport, int(r.replies), int(r.requestsPerSec), fixed(r.serverCpuUsPerRequest, 2), `${rss(r)} MiB`]),
  );
}

/** The rows the README and the targets quote: one process of each server, single ids and batches. */
function udpHeadlines(data: UdpResults) {
  const find = (server: UdpRow['server'], transport: UdpRow['transport'], test: (r: UdpRow) => boolean) =>
    data.results.find((r) => r.server === server && r.transport === transport && r.workers === 1 && !r.fleet && !isLocalVsFleet(r) && !isSoak(r) && test(r));
  const max = (r: UdpRow) => isSingleMax(r);
  const fixedRate = (r: UdpRow) => r.mode.startsWith('single id') && r.mode.endsWith('req/s');
  const batchMax = (r: UdpRow) => r.mode.startsWith('batch') && r.mode.endsWith('max');
  const server = (s: UdpRow['server'], t: UdpRow['transport']) => ({ max: find(s, t, max), fixedRate: find(s, t, fixedRate), batchMax: find(s, t, batchMax) });
  return {
    native: server('hailstone', 'native'),
    dgram: server('hailstone', 'dgram'),
    echo: server('echo', 'dgram'),
    cEcho: server('mmsg-echo', 'native'),
    twoWorkers: data.results.find((r) => r.server === 'hailstone' && r.transport === 'native' && r.workers === 2 && isSingleMax(r)),
    local: data.results.find((r) => r.server === 'hailstone' && isLocalVsFleet(r) && !r.fleet),
    fleet: data.results.find((r) => r.server === 'hailstone' && r.fleet === true),
    /** "25k req/s", from the fixed-rate rows' mode. */
    rate: /, (\S+ req\/s)$/.exec(data.results.find((r) => r.mode.endsWith('req/s'))?.mode ?? '')?.[1] ?? 'a fixed rate',
  };
}

const cpuOf = (r: UdpRow | undefined): number => r?.serverCpuUsPerRequest ?? NaN;

function readmeMission(results: Results): string {
  const h = udpHeadlines(results['udp.json']);
  const row = h.native.max ?? h.dgram.max;
  if (row === undefined) return '**The mission\'s figure — requests per second from one node:** this run has no closed-loop single-id row.';
  return (
    `**The mission's figure — requests per second from one node:** one \`hailstone serve\` process with the ${row.transport} transport ` +
    `answered **${int(row.requestsPerSec)} single-id requests/s** (the mission asks for ≥ 100,000), at ${fixed(row.serverCpuUsPerRequest, 2)} µs of server CPU per request` +
    (row.duplicates === undefined ? '.' : `, with ${int(row.duplicates)} duplicates among the ${int(row.idsChecked ?? NaN)} ids the load generator checked.`)
  );
}

function readmeServers(results: Results): string {
  const data = results['udp.json'];
  const h = udpHeadlines(data);
  // udp.ts interleaves three local/fleet pairs, one in a quick run.
  const pairs = data.quick ? 1 : 3;
  const batch = (r: UdpRow | undefined) => (r === undefined ? '' : `${fixed(r.idsPerSec / 1e6, 2)} M ids/s`);
  return table(['server, one process', 'single ids, max req/s', `CPU µs/req at ${h.rate}`, `batches of 128, max (cap: ${fixed(CAP_IDS_PER_SEC / 1e6, 2)} M ids/s)`], ['l', 'r', 'r', 'r'], [
    ['hailstone, native transport (default on Linux)', `**${int(h.native.max?.requestsPerSec ?? NaN)}**`, `**${fixed(cpuOf(h.native.fixedRate), 2)}**`, batch(h.native.batchMax)],
    ...(h.fleet === undefined
      ? []
      : [[`hailstone, ${h.fleet.transport}, fleet mode (etcd), median of ${pairs}`, `${int(h.fleet.requestsPerSec)} (local, interleaved: ${int(h.local?.requestsPerSec ?? NaN)})`, '', '']]),
    ['hailstone, `--transport dgram`', int(h.dgram.max?.requestsPerSec ?? NaN), fixed(cpuOf(h.dgram.fixedRate), 2), batch(h.dgram.batchMax)],
    ['bare Node `dgram` echo', int(h.echo.max?.requestsPerSec ?? NaN), fixed(cpuOf(h.echo.fixedRate), 2), ''],
    ['bare C `recvmmsg` echo', int(h.cEcho.max?.requestsPerSec ?? NaN), fixed(cpuOf(h.cEcho.fixedRate), 2), ''],
  ]);
}

function readmeServerRatios(results: Results): string {
  const h = udpHeadlines(results['udp.json']);
  const at = (a: UdpRow | undefined, b: UdpRow | undefined) => `${ratio(cpuOf(a) / cpuOf(b))}×`;
  return (
    `At ${h.rate} the native transport costs ${at(h.native.fixedRate, h.dgram.fixedRate)} the CPU per request of the dgram one and ` +
    `${at(h.native.fixedRate, h.cEcho.fixedRate)} the bare C server's; the dgram transport costs ${at(h.dgram.fixedRate, h.echo.fixedRate)} the bare Node echo's.`
  );
}

// ---- client ----

function clientTable(results: Results): string {
  const rows = results['client.json'].results;
  const sequential = rows[0]?.idsPerSec ?? NaN;
  return table(
    ['mode', 'ids/s', 'vs sequential', 'client CPU ns/id', 'server CPU ns/id', 'requests sent'],
    ['l', 'r', 'r', 'r', 'r', 'r'],
    rows.map((r) => [r.mode, int(r.idsPerSec), fixed(r.idsPerSec / sequential, 1), int(r.clientCpuNsPerId), r.serverCpuNsPerId === undefined ? '—' : int(r.serverCpuNsPerId), int(r.requests)]),
  );
}

function readmeClient(results: Results): string {
  const rows = results['client.json'].results;
  const sequential = rows.find((r) => r.mode === 'sequential nextId()')?.idsPerSec ?? NaN;
  const pooled = rows.find((r) => r.mode === 'pooled nextId()')?.idsPerSec ?? NaN;
  return (
    `${table(['', 'ids/s', 'client CPU per id', 'server CPU per id'], ['l', 'r', 'r', 'r'], rows.map((r) => [calls(r.mode), int(r.idsPerSec), `${int(r.clientCpuNsPerId)} ns`, r.serverCpuNsPerId === undefined ? '—' : `${int(r.serverCpuNsPerId)} ns`]))}\n\n` +
    `Pooled, \`nextId()\` gets ${int(pooled / sequential)}× the sequential rate.`
  );
}

// ---- import, steady load, latency ----

export function importTable(results: Pick<Results, 'import.json'>): string {
  return table(
    ['import', 'median', 'p90', 'CommonJS modules', 'etcd/gRPC modules'],
    ['l', 'r', 'r', 'r', 'r'],
    results['import.json'].results.map((r) => [`\`${r.task}\``, `${r.medianMs.toFixed(1)} ms`, `${r.p90Ms.toFixed(1)} ms`, String(r.cjsModules), String(r.etcdModules)]),
  );
}

export function steadyTable(results: Pick<Results, 'steady.json'>): string {
  return table(
    ['condition', 'replies', 'UNAVAILABLE', 'duplicates', 'RTT p50', 'p99', 'p99.9', 'event loop lag p99 / max', 'renewal write, mean'],
    ['l', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'r'],
    results['steady.json'].results.map((r) => {
      const why = Object.entries(r.server.refusals).map(([reason, n]) => `${reason} ${n}`).join(', ');
      return [
        r.condition,
        int(r.replies),
        `${r.unavailable}${why === '' ? '' : ` (${why})`}`,
        `${r.duplicates} of ${int(r.idsChecked)}`,
        ms(r.p50us),
        ms(r.p99us),
        ms(r.p999us),
        `${r.server.loopLagP99Ms.toFixed(1)} / ${r.server.loopLagMaxMs.toFixed(1)} ms`,
        `${r.server.renewalMeanMs.toFixed(0)} ms (${r.server.renewals})`,
      ];
    }),
  );
}

function steadyTotals(data: SteadyResults) {
  const sum = (f: (r: SteadyResults['results'][number]) => number) => data.results.reduce((a, r) => a + f(r), 0);
  return { unavailable: sum((r) => r.unavailable), duplicates: sum((r) => r.duplicates), replies: sum((r) => r.replies), conditions: data.results.length };
}

function steadySummary(results: Results): string {
  const t = steadyTotals(results['steady.json']);
  const all = t.conditions === 1 ? 'the one condition run' : `all ${NUMBER_WORDS[t.conditions] ?? t.conditions}`;
  return `**${int(t.unavailable)} UNAVAILABLE and ${int(t.duplicates)} duplicates in ${all}** (${millions(t.replies, 0)} replies).`;
}

function readmeSteady(results: Results): string {
  const data = results['steady.json'];
  const t = steadyTotals(data);
  const lead = t.unavailable === 0 && t.duplicates === 0 ? 'A healthy node never refuses.' : 'A healthy node under steady load.';
  const conditions = data.results.map((r) => r.condition).join('; ');
  const replies = data.results.map((r) => millions(r.replies, 1));
  const list = replies.length > 1 ? `${replies.slice(0, -1).join(', ')} and ${replies.at(-1)}` : (replies[0] ?? 'no');
  return `**${lead}** ${data.seconds} s of that full closed-loop rate per condition — ${conditions} — **${int(t.unavailable)} UNAVAILABLE and ${int(t.duplicates)} duplicates** in ${list} replies.`;
}

export function latencyTable(results: Pick<Results, 'latency.json'>): string {
  return table(
    ['rate (req/s)', 'server', 'replies', 'UNAVAILABLE', 'lost', 'duplicates', 'p50', 'p99', 'p99.9', 'max', 'generator send lag p99'],
    ['r', 'l', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'r'],
    results['latency.json'].results.map((r) => [
      int(r.rate),
      r.server,
      int(r.replies),
      String(r.unavailable),
      String(r.lost),
      // The echo returns the request's bytes: it has no ids to check.
      r.server === 'C mmsg echo' ? '—' : String(r.duplicates),
      latency(r.p50us),
      latency(r.p99us),
      latency(r.p999us),
      latency(r.maxUs),
      latency(r.sendLagP99us),
    ]),
  );
}

function readmeLatency(results: Results): string {
  const rows = results['latency.json'].results;
  const rates = [...new Set(rows.map((r) => r.rate))];
  const tail = (rate: number, server: string) => {
    const r = rows.find((x) => x.rate === rate && x.server === server);
    return r === undefined ? '—' : `${[r.p50us, r.p99us, r.p999us].map((us) => (us / 1000).toFixed(2)).join(' / ')} ms`;
  };
  return table(['rate', 'hailstone native p50 / p99 / p99.9', 'bare C echo p50 / p99 / p99.9'], ['r', 'l', 'l'], rates.map((rate) => [`${rate / 1000}k req/s`, tail(rate, 'hailstone native'), tail(rate, 'C mmsg echo')]));
}

// ---- targets ----

const verdict = (met: boolean): string => (met ? '**met**' : '**missed**');

function targets(results: Results): string {
  const h = udpHeadlines(results['udp.json']);
  const client = results['client.json'].results;
  const sequential = client.find((r) => r.mode === 'sequential nextId()')?.idsPerSec ?? NaN;
  const pooled = client.find((r) => r.mode === 'pooled nextId()')?.idsPerSec ?? NaN;
  const batches = client.find((r) => r.mode.startsWith('nextIds('));
  const sequentialCpu = client.find((r) => r.mode === 'sequential nextId()')?.clientCpuNsPerId ?? NaN;
  const concurrent = client.find((r) => r.mode === '64 concurrent nextId()') ?? { idsPerSec: NaN, clientCpuNsPerId: NaN };
  const paths = batchPaths(results['generator.json']).filter((p) => p.size > 1);
  const dgramFixed = cpuOf(h.dgram.fixedRate) / cpuOf(h.echo.fixedRate);
  const wasmTs = paths.map((p) => ({ size: p.size, ratio: (p.wasm?.nsPerId ?? NaN) / (p.ts?.nsPerId ?? NaN) }));
  const wasmMet = wasmTs.filter((p) => p.ratio <= 0.7);
  const wasmMissed = wasmTs.filter((p) => !(p.ratio <= 0.7));
  const sizes = (list: typeof wasmTs) => list.map((p) => `${p.size} (${ratio(p.ratio)}×)`).join(', ');
  const oneNative = h.native.max?.requestsPerSec ?? NaN;
  const twoNative = h.twoWorkers?.requestsPerSec ?? NaN;
  return [
    `- native transport ≥ 100,000 single-id requests/s from one process: ${verdict(oneNative >= 100_000)}, ${int(oneNative)} (load generator: ${h.native.max?.loadGenerator ?? '—'})`,
    `- dgram transport ≤ 1.15× the Node echo's CPU per request at a fixed rate: ${verdict(dgramFixed <= 1.15)}, ${ratio(dgramFixed)}× at ${h.rate} (${ratio(cpuOf(h.dgram.max) / cpuOf(h.echo.max))}× at max)`,
    `- pooled \`nextId()\` ≥ 1,000,000 ids/s and ≥ 25× sequential: ${verdict(pooled >= 1_000_000 && pooled / sequential >= 25)}, ${int(pooled)} ids/s, ${int(pooled / sequential)}×`,
    `- batches ≥ 1,500,000 ids/s: ${verdict((batches?.idsPerSec ?? NaN) >= 1_500_000)}, ${int(batches?.idsPerSec ?? NaN)} ids/s (${calls(batches?.mode ?? '—')})`,
    `- sequential \`nextId()\` ≤ 10 µs of client CPU per call: ${verdict(sequentialCpu <= 10_000)}, ${int(sequentialCpu)} ns`,
    `- 64 concurrent \`nextId()\` (no pool) ≥ 500,000 ids/s at ≤ 2 µs of client CPU per id: ${verdict(concurrent.idsPerSec >= 500_000 && concurrent.clientCpuNsPerId <= 2000)}, ${int(concurrent.idsPerSec)} ids/s, ${int(concurrent.clientCpuNsPerId)} ns`,
    `- WASM ≤ 0.7× TypeScript per id in batches, each backend's faster path: ` +
      [wasmMet.length > 0 ? `${verdict(true)} at ${sizes(wasmMet)}` : '', wasmMissed.length > 0 ? `${verdict(false)} at ${sizes(wasmMissed)}` : ''].filter((s) => s !== '').join('; '),
    `- \`--workers 2\` more requests/s than one, native transport: ${verdict(twoNative > oneNative)}, ${int(twoNative)} vs ${int(oneNative)}`,
  ].join('\n');
}

// ---- ids over HTTP ----

function httpRows(results: Results) {
  const rows = results['http.json'].results;
  const single = rows.find((r) => r.server === 'hailstone' && r.route === 'GET /v1/id');
  const batch = rows.find((r) => r.server === 'hailstone' && r.route.startsWith('GET /v1/ids'));
  const bare = rows.find((r) => r.server === 'node:http' && r.route === 'constant body');
  const bareAfterGc = rows.find((r) => r.server === 'node:http' && r.route.includes('full GC'));
  const afterGc = rows.find((r) => r.server === 'hailstone' && r.route.includes('full GC'));
  const flask = rows.find((r) => r.server === 'Flask');
  const workers = rows.find((r) => r.server === 'hailstone' && r.route.includes('--workers 2'));
  return { rows, single, batch, bare, bareAfterGc, afterGc, flask, workers };
}

function httpTable(results: Results): string {
  const data = results['http.json'];
  const { rows, single, batch, bare, bareAfterGc, afterGc, flask, workers } = httpRows(results);
  const vsBare = (single?.requestsPerSec ?? NaN) / (bare?.requestsPerSec ?? NaN);
  const vsFlask = (single?.requestsPerSec ?? NaN) / (flask?.requestsPerSec ?? NaN);
  const batchIds = batch?.idsPerSec ?? NaN;
  return [
    `wrk ${data.wrk.replace(/^wrk /, '')}, \`-t1 -c${data.connections} -d${data.seconds}s\`, keep-alive; one server at a time, each loaded (a warm-up) right after its first answers; the bare node:http server answers the bytes \`/v1/id\` answers; node:http and \`/v1/id\` the best of alternating rounds (${[bare, single].map((r) => `${r?.server}: ${(r?.roundsPerSec ?? [r?.requestsPerSec ?? NaN]).map(int).join(', ')}`).join('; ')} req/s).`,
    '',
    table(
      ['server', 'route', 'requests/s', 'ids/s', 'server CPU per request', 'p50', 'p99', 'non-2xx'],
      ['l', 'l', 'r', 'r', 'r', 'r', 'r', 'r'],
      rows.map((r) => [r.server, `\`${r.route}\``, int(r.requestsPerSec), int(r.idsPerSec), `${r.serverCpuUsPerRequest.toFixed(1)} µs`, latency(r.p50us), latency(r.p99us), int(r.non2xx)]),
    ),
    '',
    `- \`/v1/id\` ≥ 0.9× the bare node:http server's requests/s: ${verdict(vsBare >= 0.9)}, ${fixed(vsBare, 3)}× (${int(single?.requestsPerSec ?? NaN)} vs ${int(bare?.requestsPerSec ?? NaN)}); ${fixed(vsFlask, 1)}× the Flask seed's`,
    `- ≥ 4,000,000 ids/s with \`count=4096\`: ${verdict(batchIds >= 4_000_000)}, ${int(batchIds)} ids/s (${fixed(batchIds / CAP_IDS_PER_SEC, 2)} of the layout's cap of ${int(CAP_IDS_PER_SEC)} ids/s per node; ${int(batch?.non2xx ?? NaN)} answers 503 where demand passed it)`,
    ...(bareAfterGc === undefined || afterGc === undefined
      ? []
      : [
          `- After one full GC between the first answer and the load: the bare node:http server ${int(bareAfterGc.requestsPerSec)} requests/s at ${bareAfterGc.serverCpuUsPerRequest.toFixed(1)} µs of CPU per request (${ratio(bareAfterGc.requestsPerSec / (bare?.requestsPerSec ?? NaN))}× of itself without it), hailstone \`/v1/id\` ${int(afterGc.requestsPerSec)} at ${afterGc.serverCpuUsPerRequest.toFixed(1)} µs (${ratio(afterGc.requestsPerSec / (single?.requestsPerSec ?? NaN))}× of itself, ${ratio(afterGc.requestsPerSec / bareAfterGc.requestsPerSec)}× the bare server in that history): hailstone warms node:http's path at startup — see "Against the bare node:http server" below`,
        ]),
    ...(workers === undefined ? [] : [`- \`--workers 2\`: ${int(workers.requestsPerSec)} requests/s against one process's ${int(single?.requestsPerSec ?? NaN)} (${ratio(workers.requestsPerSec / (single?.requestsPerSec ?? NaN))}×; wrk's one thread shares the 2 cores with both workers and the primary)`]),
  ].join('\n');
}

function readmeHttp(results: Results): string {
  const { single, batch, bare, flask, workers } = httpRows(results);
  return table(
    ['over HTTP (wrk, keep-alive, 64 connections)', 'requests/s', 'ids/s', 'server CPU per request'],
    ['l', 'r', 'r', 'r'],
    [
      ['hailstone `GET /v1/id`', single],
      ['bare node:http, a constant body', bare],
      ['Flask seed under gunicorn, 1 worker', flask],
      ['hailstone `GET /v1/ids?count=4096`', batch],
      ...(workers === undefined ? [] : [['hailstone `GET /v1/id`, `--workers 2`', workers]]),
    ].map(([name, r]) => {
      const row = r as (typeof single);
      return [name as string, int(row?.requestsPerSec ?? NaN), int(row?.idsPerSec ?? NaN), `${(row?.serverCpuUsPerRequest ?? NaN).toFixed(1)} µs`];
    }),
  );
}

// ---- a whole fleet starting at once (bench:fleet-scale) ----

/** The failures of a phase, as "none" or "CODE ×n, …". */
const failuresOf = (failures: Record<string, number>): string => {
  const entries = Object.entries(failures);
  return entries.length === 0 ? 'none' : entries.map(([code, n]) => `${code} ×${n}`).join(', ');
};

function fleetScaleTable(results: Results): string {
  const data = results['fleet-scale.json'];
  const rows = data.results;
  const restart = rows.find((r) => r.restart !== undefined);
  return [
    `Each row: N claimants started at once in one process (${data.connections} etcd connections, lease TTL ${data.leaseTtlS} s), each with fleet mode's claim, lease and node reservation and W worker stripes (real nodes on their own timers); etcd requests are etcd's own count (its \`/metrics\`), the latency its p99 for unary calls. "to claim": every request from the start until all hold an id; "with the node": until every node stored its first reservation, including the keepalives and renewals of the first-start wait. Steady: 10 s while every node renews.`,
    '',
    table(
      ['etcd', 'claimants × stripes', 'all claimed (p50 / p99 / max)', 'requests per claimant: to claim / with the node', 'failures', 'steady requests/s: all / per node', 'etcd p99', 'reservation writes/s per node'],
      ['l', 'l', 'r', 'r', 'l', 'r', 'r', 'r'],
      rows.map((r) => [
        r.etcd,
        `${int(r.claimants)} × ${r.stripes}`,
        `${int(r.claimP50Ms)} / ${int(r.claimP99Ms)} / ${int(r.claimMaxMs)} ms`,
        `${fixed(r.claimRequestsPerClaimant, 2)} / ${fixed(r.startRequestsPerClaimant, 2)}`,
        `${failuresOf(r.failures)}${(r.reclaims ?? 0) > 0 ? ` (${int(r.reclaims!)} claims lost before the node opened, claimed again)` : ''}`,
        `${int(r.steadyRequestsPerSec ?? NaN)} / ${fixed(r.steadyPerNodePerSec ?? NaN, 2)}`,
        `${fixed(r.steadyP99Ms ?? NaN, 0)} ms`,
        fixed((r.reservationWritesPerSec ?? NaN) / r.claimants, 2),
      ]),
    ),
    '',
    ...fleetScaleVerdicts(rows),
    ...(restart?.restart === undefined
      ? []
      : [
          `- Power loss of the whole fleet of ${int(restart.claimants)} (${restart.etcd} etcd: every claim and node dropped at once, nothing released), then ${int(restart.claimants)} new claimants: all held an id ${fixed(restart.restart.allClaimedAfterMs / 1000, 1)} s after the loss (the old leases ran out first), ${fixed(restart.restart.requestsPerClaimant, 2)} requests each; ${int(restart.restart.nodeIdsAbove)} of ${int(restart.claimants)} node ids started at or above their stored R and issued only above the old ids (${int(restart.restart.idsChecked)} ids checked${(restart.restart.fencedBefore ?? 0) + (restart.restart.fencedAfter ?? 0) > 0 ? `; ${int(restart.restart.fencedBefore ?? 0)} nodes fenced before the loss and ${int(restart.restart.fencedAfter ?? 0)} after it, on this loaded machine, issued nothing more and were not counted` : ''}); violations: ${restart.restart.violations.length === 0 ? 'none' : restart.restart.violations.slice(0, 3).join('; ')}; failures: ${failuresOf(restart.restart.failures)}.`,
        ]),
  ].join('\n');
}

/** The targets: 1024 claimants all claimed within 10 s at ≤ 10 requests each; ≤ 2 requests/s per node whatever the stripes. */
function fleetScaleVerdicts(rows: FleetScaleRow[]): string[] {
  const largest = rows.filter((r) => r.claimants === Math.max(...rows.map((x) => x.claimants)) && r.stripes === 1);
  const lines = largest.map(
    (r) =>
      `- ${int(r.claimants)} claimants, ${r.etcd} etcd, all claimed within 10 s at ≤ 10 etcd requests each: ${verdict(r.claimMaxMs <= 10_000 && r.claimRequestsPerClaimant <= 10 && Object.keys(r.failures).length === 0)} (${fixed(r.claimMaxMs / 1000, 1)} s, ${fixed(r.claimRequestsPerClaimant, 2)} requests)`,
  );
  const perNode = rows.map((r) => r.steadyPerNodePerSec ?? NaN);
  lines.push(`- steady state ≤ 2 etcd requests/s per node whatever the worker stripes: ${verdict(perNode.every((x) => x <= 2))} (${fixed(Math.min(...perNode), 2)}–${fixed(Math.max(...perNode), 2)} across the rows, 1 and 16 stripes)`);
  return lines;
}

function fleetScaleSummary(results: Results): string {
  const rows = results['fleet-scale.json'].results;
  return [...fleetScaleVerdicts(rows), `- the whole table, with a power loss of the whole fleet: [benchmarks](benchmarks.md#fleet-scale)`].join('\n');
}

/** The simulated fleet beside the real-etcd one: the same questions, asked of 1024 members in virtual time. */
function fleetSim(results: Results): string {
  const { rows, band } = results['fleet-sim.json'];
  const real = results['fleet-scale.json'].results.find((r) => r.claimants === 1024 && r.etcd === 'single' && r.stripes === 1);
  const body = table(
    ['members × stripes', 'every member serving after', 'coordinator requests per member until then', 'steady requests/s', 'per member', 'ids checked', 'simulator CPU'],
    ['l', 'r', 'r', 'r', 'r', 'r', 'r'],
    rows.map((r) => [`${int(r.members)} × ${r.stripes}`, `${fixed(r.allServingMs / 1000, 1)} s`, fixed(r.coldStartRequestsPerMember, 1), int(r.steadyRequestsPerSec), fixed(r.steadyRequestsPerSecPerMember, 2), int(r.ids), `${fixed(r.cpuSeconds, 1)} s`]),
  );
  const compare =
    real === undefined
      ? ''
      : `\n\nThe real etcd, same lease and lead (\`npm run bench:fleet-scale\`, single member): ${int(real.claimants)} claimants, the slowest claimed in ${fixed(real.claimMaxMs / 1000, 1)} s, ${fixed(real.startRequestsPerClaimant, 2)} requests each to claim and open the node; steady ${fixed(real.steadyPerNodePerSec ?? NaN, 2)} requests/s per node.`;
  const speed = `\n\nThe suite's band: ${band.seeds} seeds of ${band.members} members × ${band.minutes} simulated minutes, at least ${band.fewestFaults} faults each, ${millions(band.ids, 2)} ids checked: **${fixed(band.cpuSecondsPerSeed, 2)} s of CPU per seed** (target under 1 s: ${band.cpuSecondsPerSeed < 1 ? 'met' : 'missed'}).`;
  return `${body}${compare}${speed}`;
}

// ---- every region, by document ----

export const REGIONS: Region[] = [
  { id: 'generator-cost', doc: 'docs/benchmarks.md', sources: ['generator.json'], sourceAt: 'above', body: generatorCost },
  { id: 'generator-real-clock', doc: 'docs/benchmarks.md', sources: ['generator.json'], sourceAt: 'above', body: generatorRealClock },
  { id: 'generator-batches', doc: 'docs/benchmarks.md', sources: ['generator.json'], sourceAt: 'above', body: generatorBatches },
  { id: 'udp-servers', doc: 'docs/benchmarks.md', sources: ['udp.json'], sourceAt: 'above', body: udpServers },
  { id: 'udp-pinned', doc: 'docs/benchmarks.md', sources: ['udp-pinned.json'], sourceAt: 'above', body: udpPinned },
  { id: 'client', doc: 'docs/benchmarks.md', sources: ['client.json'], sourceAt: 'above', body: clientTable },
  { id: 'steady', doc: 'docs/benchmarks.md', sources: ['steady.json'], sourceAt: 'above', body: (results) => `${steadyTable(results)}\n\n${steadySummary(results)}` },
  { id: 'latency', doc: 'docs/benchmarks.md', sources: ['latency.json'], sourceAt: 'above', body: latencyTable },
  { id: 'import', doc: 'docs/benchmarks.md', sources: ['import.json'], sourceAt: 'above', body: importTable },
  { id: 'udp-soak', doc: 'docs/benchmarks.md', sources: ['udp-soak.json'], sourceAt: 'above', body: udpSoak },
  { id: 'targets', doc: 'docs/benchmarks.md', sources: ['udp.json', 'client.json', 'generator.json'], sourceAt: 'above', body: targets },
  { id: 'http', doc: 'docs/benchmarks.md', sources: ['http.json'], sourceAt: 'above', body: httpTable },
  { id: 'fleet-scale', doc: 'docs/benchmarks.md', sources: ['fleet-scale.json'], sourceAt: 'above', body: fleetScaleTable },
  { id: 'fleet-scale-summary', doc: 'docs/fleet.md', sources: ['fleet-scale.json'], sourceAt: 'below', body: fleetScaleSummary },
  { id: 'fleet-sim', doc: 'docs/fleet.md', sources: ['fleet-sim.json', 'fleet-scale.json'], sourceAt: 'below', body: fleetSim },
  { id: 'readme-http', doc: 'README.md', sources: ['http.json'], sourceAt: 'above', body: readmeHttp },
  { id: 'readme-generator', doc: 'README.md', sources: ['generator.json'], sourceAt: 'above', body: readmeGenerator },
  { id: 'readme-mission', doc: 'README.md', sources: ['udp.json'], sourceAt: 'below', body: readmeMission },
  { id: 'readme-servers', doc: 'README.md', sources: ['udp.json'], sourceAt: 'above', body: (results) => `${readmeServers(results)}\n\n${readmeServerRatios(results)}` },
  { id: 'readme-steady', doc: 'README.md', sources: ['steady.json'], sourceAt: 'below', body: readmeSteady },
  { id: 'readme-latency', doc: 'README.md', sources: ['latency.json'], sourceAt: 'above', body: readmeLatency },
  { id: 'readme-client', doc: 'README.md', sources: ['client.json'], sourceAt: 'above', body: readmeClient },
];

/** A region's markdown between its markers: the figures and where they come from. */
export function renderRegion(region: Region, results: Results): string {
  const body = region.body(results);
  const source = sourceLine(results, region.sources);
  return region.sourceAt === 'above' ? `${source}\n\n${body}` : `${body}\n\n${source}`;
}
