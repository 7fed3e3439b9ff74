// Writes everything the docs show from the benchmark results: the charts, and every table
// (with the sentences that quote them) between the generated-region markers of
// docs/benchmarks.md and the README. Each benchmark's npm script ends by running it, so the
// docs change only with the results they are rendered from.
//
//   npm run bench:report     reads bench/results/*.json, writes docs/bench-*.svg and the regions
//
// HAILSTONE_BENCH_RESULTS: where to read the results (default bench/results);
// HAILSTONE_BENCH_CHARTS: where to write the charts (default docs);
// HAILSTONE_BENCH_DOCS: a directory standing in for the repository root, holding the
// README.md and docs/benchmarks.md to fill (default the repository itself).

import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { generatorChart, rateChart, udpChart } from './charts.js';
import { fillRegions } from './regions.js';
import { readResults } from './results.js';
import { type Doc, REGIONS, renderRegion } from './tables.js';

const ROOT = fileURLToPath(new URL('../', import.meta.url));
const input = process.env.HAILSTONE_BENCH_RESULTS ?? join(ROOT, 'bench/results');
const chartDir = process.env.HAILSTONE_BENCH_CHARTS ?? join(ROOT, 'docs');
const docsRoot = process.env.HAILSTONE_BENCH_DOCS ?? ROOT;

const results = readResults(input);

const charts: [string, string][] = [
  ['bench-generator.svg', generatorChart(results)],
  ['bench-udp.svg', udpChart(results)],
  ['bench-udp-rate.svg', rateChart(results)],
];
for (const [name, svg] of charts) writeFileSync(join(chartDir, name), svg);
console.log(`wrote ${charts.map(([name]) => join(chartDir, name)).join(', ')}`);

for (const doc of [...new Set(REGIONS.map((r) => r.doc))] as Doc[]) {
  const path = join(docsRoot, doc);
  const before = readFileSync(path, 'utf8');
  const regions = REGIONS.filter((r) => r.doc === doc).map((r) => ({ id: r.id, sources: r.sources, render: () => renderRegion(r, results) }));
  const after = fillRegions(before, path, regions);
  if (after !== before) writeFileSync(path, after);
  console.log(`${after === before ? 'unchanged' : 'rewrote'} ${path} (${regions.length} generated regions)`);
}
