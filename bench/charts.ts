// The benchmark charts for the docs and the README, as SVG written by hand: horizontal bar
// charts need no charting library.

import type { Machine } from './machine.js';
import type { Results } from './results.js';

interface Bar {
  label: string;
  value: number;
  note: string;
  color: string;
}

const COLORS = { wasm: '#2f6fdf', ts: '#37a169', peer: '#9a9a9a', echo: '#b0b0b0', hailstone: '#2f6fdf', native: '#d9822b', cEcho: '#6b6b6b' };

function escape(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

/** A horizontal bar chart; `log` uses a log10 axis (for values spanning decades). */
/** `mark`: a vertical reference line (a target) with its label. */
function barChart(title: string, subtitle: string, unit: string, bars: Bar[], log: boolean, mark?: { value: number; label: string }): string {
  const left = 300;
  const width = 1000;
  const plot = width - left - 290;
  const rowH = 24;
  const top = 64;
  const height = top + bars.length * rowH + 46;
  const max = Math.max(...bars.map((b) => b.value), mark?.value ?? 0);
  const lo = log ? 10 ** Math.floor(Math.log10(Math.min(...bars.map((b) => b.value)))) : 0;
  // Linear axes end on a round step (1, 2 or 5 × a power of ten) so the ticks are readable.
  const step = log ? 0 : niceStep(max / 5);
  const hi = log ? 10 ** Math.ceil(Math.log10(max)) : Math.ceil(max / step) * step;
  const x = (v: number) => (log ? (Math.log10(v / lo) / Math.log10(hi / lo)) * plot : (v / hi) * plot);
  const ticks: number[] = [];
  if (log) for (let t = lo; t <= hi * 1.0001; t *= 10) ticks.push(t);
  else for (let t = 0; t <= hi + step / 2; t += step) ticks.push(t);
  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="Helvetica, Arial, sans-serif" font-size="13">`);
  out.push(`<rect width="100%" height="100%" fill="#ffffff"/>`);
  out.push(`<text x="16" y="26" font-size="17" font-weight="bold">${escape(title)}</text>`);
  out.push(`<text x="16" y="46" fill="#555">${escape(subtitle)}</text>`);
  for (const t of ticks) {
    const tx = left + x(t);
    out.push(`<line x1="${tx}" y1="${top - 6}" x2="${tx}" y2="${top + bars.length * rowH}" stroke="#e4e4e4"/>`);
    const label = t >= 1000 ? t.toLocaleString('en-US', { maximumFractionDigits: 0 }) : String(Number(t.toPrecision(3)));
    out.push(`<text x="${tx}" y="${top + bars.length * rowH + 18}" text-anchor="middle" fill="#555">${label}</text>`);
  }
  out.push(`<text x="${left + plot / 2}" y="${top + bars.length * rowH + 38}" text-anchor="middle" fill="#555">${escape(unit)}${log ? ' (log scale)' : ''}</text>`);
  if (mark !== undefined) {
    const mx = left + x(mark.value);
    out.push(`<line x1="${mx}" y1="${top - 10}" x2="${mx}" y2="${top + bars.length * rowH}" stroke="#c0392b" stroke-width="2" stroke-dasharray="6 4"/>`);
    out.push(`<text x="${mx + 4}" y="${top - 12}" fill="#c0392b">${escape(mark.label)}</text>`);
  }
  bars.forEach((b, i) => {
    const y = top + i * rowH;
    const w = Math.max(1, x(b.value));
    out.push(`<text x="${left - 10}" y="${y + 16}" text-anchor="end">${escape(b.label)}</text>`);
    out.push(`<rect x="${left}" y="${y + 4}" width="${w.toFixed(1)}" height="${rowH - 8}" fill="${b.color}"/>`);
    out.push(`<text x="${left + w + 6}" y="${y + 16}" fill="#333">${escape(b.note)}</text>`);
  });
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}

function niceStep(raw: number): number {
  const power = 10 ** Math.floor(Math.log10(raw));
  const f = raw / power;
  return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * power;
}

function machineLine(m: Machine): string {
  return `${m.cpu}, ${m.cores} cores, Node ${m.node}, ${m.date.slice(0, 10)}`;
}

export function generatorChart(results: Pick<Results, 'generator.json'>): string {
  const data = results['generator.json'];
  const rows = data.results.filter((r) => r.clock === 'fake' || !r.task.startsWith('hailstone'));
  const duplicates = (task: string) => {
    const run = data.realClock.find((c) => c.task === task);
    return run !== undefined && run.duplicates > 0 ? ` — ${run.duplicates.toLocaleString('en-US')} duplicates in ${Math.min(run.ids, 1e6).toLocaleString('en-US')} ids` : '';
  };
  const bars = rows
    .map((r) => ({
      label: r.task,
      value: r.nsPerId,
      note: `${r.nsPerId < 10 ? r.nsPerId.toFixed(2) : r.nsPerId.toFixed(0)} ns${duplicates(r.task)}`,
      color: r.task.startsWith('hailstone wasm') ? COLORS.wasm : r.task.startsWith('hailstone ts') ? COLORS.ts : COLORS.peer,
    }))
    .sort((a, b) => a.value - b.value);
  return barChart(
    'Cost per id: hailstone (WASM blue, TypeScript green) and npm peers (grey)',
    `npm run bench — ${machineLine(data.machine)}; hailstone with a fast fake clock, peers with their own`,
    'ns per id, lower is better',
    bars,
    true,
  );
}

export function udpChart(results: Pick<Results, 'udp.json'>): string {
  const data = results['udp.json'];
  const bars = data.results
    .filter((r) => !r.mode.startsWith('soak'))
    .map((r) => ({
      label: `${r.server === 'echo' ? 'dgram echo' : r.server === 'mmsg-echo' ? 'C mmsg echo' : `hailstone ${r.transport ?? 'dgram'}`}, ${r.mode.replace(/ \([^)]*\)/, '')}, ${r.workers} proc`,
      value: r.serverCpuUsPerRequest,
      note:
        `${r.serverCpuUsPerRequest.toFixed(1)} µs · ${Math.round(r.requestsPerSec).toLocaleString('en-US')} req/s` +
        (r.server === 'hailstone' && r.idsPerSec > r.requestsPerSec ? ` · ${(r.idsPerSec / 1e6).toFixed(2)} M ids/s` : ''),
      color: r.server === 'mmsg-echo' ? COLORS.cEcho : r.server !== 'hailstone' ? COLORS.echo : r.transport === 'native' ? COLORS.native : COLORS.hailstone,
    }));
  return barChart(
    'Server CPU per request: hailstone dgram (blue), native (orange); echo in Node (light), C (dark)',
    `npm run bench:udp — ${machineLine(data.machine)}; loopback, load generator on the same machine`,
    'server CPU µs per request, lower is better',
    bars,
    false,
  );
}

/** Single-id requests per second at saturation, against the mission's 100,000 per node. */
export function rateChart(results: Pick<Results, 'udp.json'>): string {
  const data = results['udp.json'];
  const bars = data.results
    .filter((r) => r.mode.startsWith('single id') && r.mode.includes('max'))
    .map((r) => ({
      label: `${r.server === 'echo' ? 'dgram echo' : r.server === 'mmsg-echo' ? 'C mmsg echo' : `hailstone ${r.transport ?? 'dgram'}${r.fleet ? ' (fleet)' : r.mode.includes('local vs fleet') ? ' (local, pair)' : ''}`}, ${r.workers} proc`,
      value: r.requestsPerSec,
      note: `${Math.round(r.requestsPerSec).toLocaleString('en-US')} req/s${r.loadGenerator === 'node' ? ' (Node load)' : ''}`,
      color: r.server === 'mmsg-echo' ? COLORS.cEcho : r.server !== 'hailstone' ? COLORS.echo : r.transport === 'native' ? COLORS.native : COLORS.hailstone,
    }));
  return barChart(
    'Single-id requests per second from one node at saturation',
    `npm run bench:udp — ${machineLine(data.machine)}; loopback, C load generator on the same two cores`,
    'requests per second, higher is better',
    bars,
    false,
    { value: 100_000, label: 'mission: 100,000 req/s per node' },
  );
}

