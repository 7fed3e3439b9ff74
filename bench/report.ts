// Renders the benchmark results as SVG charts for the docs and the README.
//
//   npm run bench:report     reads bench/results/{generator,udp}.json, writes docs/bench-*.svg

import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { generatorChart, rateChart, udpChart } from './charts.js';
import type { GeneratorResults, UdpResults } from './results.js';

const ROOT = fileURLToPath(new URL('../', import.meta.url));
const input = process.env.HAILSTONE_BENCH_RESULTS ?? join(ROOT, 'bench/results');
const outDir = process.env.HAILSTONE_BENCH_CHARTS ?? join(ROOT, 'docs');

const read = <T>(file: string): T => JSON.parse(readFileSync(join(input, file), 'utf8')) as T;
const results = { 'generator.json': read<GeneratorResults>('generator.json'), 'udp.json': read<UdpResults>('udp.json') };

writeFileSync(join(outDir, 'bench-generator.svg'), generatorChart(results));
writeFileSync(join(outDir, 'bench-udp.svg'), udpChart(results));
writeFileSync(join(outDir, 'bench-udp-rate.svg'), rateChart(results));
console.log(`wrote ${join(outDir, 'bench-generator.svg')}, ${join(outDir, 'bench-udp.svg')} and ${join(outDir, 'bench-udp-rate.svg')}`);
