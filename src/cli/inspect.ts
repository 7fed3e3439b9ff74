// hailstone inspect <id>: what an id is made of, as JSON — for the default layout, or the
// one given with --layout and --epoch. Ids are read by the library's parser (parseId).

import { Command } from 'commander';
import { decode } from '../codec.js';
import { MAX_CLOCK_MS } from '../core/constants.js';
import { InvalidArgumentError } from '../errors.js';
import { type LayoutOptions, defineLayout } from '../layout.js';
import { UsageError, detailOf, usageErrorOf } from './failure.js';
import { intOption, parsedOption } from './options.js';

const BARE_HEX = /^[0-9a-f]{16}$/i;

/**
 * The id as typed, for parseId: what it reads (decimal, 0x… hex), or the 16 hex digits of
 * `get --format hex` without their 0x. Sixteen digits with no letter are read as hex only
 * when they start with 0: a decimal id of 16 digits is never printed with a leading zero.
 */
export function idText(text: string): string {
  return BARE_HEX.test(text) && (/[a-f]/i.test(text) || text.startsWith('0')) ? `0x${text}` : text;
}

const LAYOUT_FIELDS: Readonly<Record<string, keyof LayoutOptions>> = { time: 'timeBits', node: 'nodeBits', seq: 'sequenceBits', tick: 'tickMs' };

/**
 * --layout: "T,N,S" (the widths of the time, node and sequence fields, in bits) or
 * "time=T,node=N,seq=S,tick=MS" where any field left out keeps its default (41, 10, 12, 1 ms
 * ticks). defineLayout checks the values; this only reads them.
 */
export function parseLayoutSpec(text: string): LayoutOptions {
  const positional = /^(\d+),(\d+),(\d+)$/.exec(text.replace(/\s+/g, ''));
  if (positional !== null) return { timeBits: Number(positional[1]), nodeBits: Number(positional[2]), sequenceBits: Number(positional[3]) };
  const options: LayoutOptions = {};
  for (const part of text.split(',').map((p) => p.trim())) {
    const m = /^([a-z]+)=(\d+)$/.exec(part);
    const field = m === null ? undefined : LAYOUT_FIELDS[m[1]!];
    if (m === null || field === undefined) {
      throw new Error(`${JSON.stringify(part)} is not a field of a layout: give "TIME,NODE,SEQ" bits (e.g. 41,10,12) or "time=41,node=10,seq=12,tick=1"`);
    }
    if (options[field] !== undefined) throw new Error(`${m[1]} is given twice`);
    (options as Record<string, number>)[field] = Number(m[2]);
  }
  return options;
}

/** --epoch: ms since the Unix epoch, or an ISO 8601 date (UTC) or date and time with Z or an offset. */
export function parseEpoch(text: string): number {
  if (/^-?\d+$/.test(text)) {
    const ms = Number(text);
    if (!Number.isSafeInteger(ms)) throw new Error('it is too large for ms since the Unix epoch');
    return ms;
  }
  const iso = /^\d{4}-\d{2}-\d{2}(?:T\d{2}:\d{2}(?::\d{2}(?:\.\d{1,3})?)?(Z|[+-]\d{2}:\d{2})?)?$/i.exec(text);
  if (iso === null) throw new Error('give ms since the Unix epoch (1735689600000) or an ISO date (2025-01-01, 2025-01-01T00:00:00Z)');
  // Without a zone a time would be read in this machine's zone: another machine would disagree.
  if (text.includes('T') && iso[1] === undefined) throw new Error(`add Z (UTC) or an offset such as +02:00 to the time: ${text}Z`);
  const ms = Date.parse(text);
  if (Number.isNaN(ms)) throw new Error(`${text} is not a date`);
  return ms;
}

interface InspectFlags {
  workers?: number;
  layout?: LayoutOptions;
  epoch?: number;
}

export function inspectProgram(): Command {
  return new Command('inspect')
    .description('Print what an id is made of, as JSON: id, hex, ISO time, timestamp (ms since the Unix epoch), node id and sequence; for the default layout unless --layout or --epoch says otherwise.')
    .argument('<id>', 'the id: decimal (leading zeros allowed) or hex as 0x… (or the 16 hex digits of get --format hex)')
    .addOption(intOption('--workers <n>', 'the node ran N worker processes: also print the worker stripe', 'HAILSTONE_WORKERS', { min: 1, max: 64 }))
    .addOption(parsedOption('--layout <spec>', 'the bits of the time, node and sequence fields: "41,10,12", or "time=41,node=10,seq=12,tick=1" (tick: ms per time unit; fields left out keep their defaults)', 'HAILSTONE_LAYOUT', parseLayoutSpec, '41,10,12 with 1 ms ticks'))
    .addOption(parsedOption('--epoch <ms|ISO>', 'time zero of the time field: ms since the Unix epoch, or an ISO date such as 2025-01-01 or 2025-01-01T00:00:00Z', 'HAILSTONE_EPOCH', parseEpoch, '2025-01-01T00:00:00Z'))
    .action((text: string, flags: InspectFlags) => {
      // Out-of-range values name --layout or --epoch (main maps the library's arguments).
      const layout = defineLayout({ ...flags.layout, ...(flags.epoch === undefined ? {} : { epoch: flags.epoch }) });
      let decoded;
      try {
        decoded = decode(idText(text), { layout, ...(flags.workers === undefined ? {} : { workers: flags.workers }) });
      } catch (error) {
        if (!(error instanceof InvalidArgumentError)) throw error;
        if (error.argument !== 'id') throw usageErrorOf(error);
        // '"zz" is not an id: …', 'the id must be from 0 to …', 'the id: sequence 4095 lies past …'
        const detail = detailOf(error);
        throw new UsageError(detail.startsWith('"') ? detail : detail.startsWith('must ') ? `the id ${detail}` : `the id: ${detail}`);
      }
      const out = {
        id: decoded.id.toString(),
        hex: `0x${decoded.id.toString(16).padStart(16, '0')}`,
        // A long time field with long ticks can reach past what a Date holds.
        time: Math.abs(decoded.timestamp) <= MAX_CLOCK_MS ? new Date(decoded.timestamp).toISOString() : null,
        timestamp: decoded.timestamp,
        nodeId: decoded.nodeId,
        sequence: decoded.sequence,
        ...(decoded.worker === undefined ? {} : { worker: decoded.worker }),
      };
      process.stdout.write(`${JSON.stringify(out)}\n`);
    });
}
