// hailstone inspect <id>: what an id is made of, as JSON.

import { Command } from 'commander';
import { decode } from '../codec.js';
import { InvalidArgumentError } from '../errors.js';
import { UsageError } from './failure.js';
import { intOption } from './options.js';

const HEX = /^0x[0-9a-f]{1,16}$/i;
const BARE_HEX = /^[0-9a-f]{16}$/i;
const DECIMAL = /^[0-9]{1,20}$/;

/**
 * An id as typed: decimal, 0x-prefixed hex, or the 16 hex digits of `get --format hex`
 * without its prefix. Sixteen digits with no letter are read as decimal unless they start
 * with 0 (a decimal id is never printed with a leading zero).
 */
export function idFromText(text: string): bigint {
  if (HEX.test(text)) return BigInt(text);
  if (BARE_HEX.test(text) && (/[a-f]/i.test(text) || text.startsWith('0'))) return BigInt(`0x${text}`);
  if (DECIMAL.test(text)) return BigInt(text);
  throw new UsageError(`${JSON.stringify(text)} is not an id: give it in decimal (as \`hailstone get\` prints it) or hex (0x…)`);
}

export function inspectProgram(): Command {
  return new Command('inspect')
    .description('Print what an id is made of, as JSON: id, ISO time, timestamp (ms since the Unix epoch), node id and sequence, for the default layout.')
    .argument('<id>', 'the id: decimal, or hex as 0x… (or the 16 hex digits of get --format hex)')
    .addOption(intOption('--workers <n>', 'the node ran N worker processes: also print the worker stripe', 'HAILSTONE_WORKERS', { min: 1, max: 64 }))
    .action((text: string, flags: { workers?: number }) => {
      let decoded;
      try {
        decoded = decode(idFromText(text), flags.workers === undefined ? {} : { workers: flags.workers });
      } catch (error) {
        if (error instanceof InvalidArgumentError) throw new UsageError(error.message.replace(/^id: /, 'the id '));
        throw error;
      }
      const out = {
        id: decoded.id.toString(),
        hex: `0x${decoded.id.toString(16).padStart(16, '0')}`,
        time: new Date(decoded.timestamp).toISOString(),
        timestamp: decoded.timestamp,
        nodeId: decoded.nodeId,
        sequence: decoded.sequence,
        ...(decoded.worker === undefined ? {} : { worker: decoded.worker }),
      };
      process.stdout.write(`${JSON.stringify(out)}\n`);
    });
}
