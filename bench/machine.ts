// What a benchmark ran on and how it was started: printed with every result and stored
// beside it, so every figure can be quoted with its machine, Node version and command.

import { cpus, totalmem } from 'node:os';
import { isAbsolute, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../', import.meta.url));

export interface Machine {
  node: string;
  cpu: string;
  cores: number;
  memoryGiB: number;
  platform: string;
  date: string;
}

export function machine(): Machine {
  return {
    node: process.version,
    cpu: cpus()[0]?.model.trim() ?? 'unknown',
    cores: cpus().length,
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    platform: `${process.platform}-${process.arch}`,
    date: new Date().toISOString(),
  };
}

export function describeMachine(m: Machine): string {
  return `${m.cpu}, ${m.cores} cores, ${m.memoryGiB} GiB, ${m.platform}, Node ${m.node}, ${m.date}`;
}

/**
 * The command that reproduces this run: `npm run SCRIPT` with the HAILSTONE_BENCH_*
 * settings it ran with (they change what is measured and where it is written).
 */
export function command(script: string): string {
  const settings = Object.entries(process.env)
    .filter((entry): entry is [string, string] => entry[0].startsWith('HAILSTONE_BENCH_') && entry[1] !== undefined)
    .sort(([a], [b]) => (a < b ? -1 : 1))
    .map(([name, value]) => {
      const shown = name === 'HAILSTONE_BENCH_OUTPUT' && isAbsolute(value) && !relative(ROOT, value).startsWith('..') ? relative(ROOT, value) : value;
      return `${name}=${/^[\w./,:@+-]*$/.test(shown) ? shown : `'${shown.replace(/'/g, `'\\''`)}'`}`;
    });
  return [...settings, `npm run ${script}`].join(' ');
}
