// hailstone inspect <id>: what an id is made of, as JSON.

import { parseArgs } from 'node:util';
import { decode } from '../codec.js';
import { InvalidArgumentError } from '../errors.js';
import { UsageError } from './failure.js';

export const INSPECT_HELP = `Usage: hailstone inspect <id> [--workers N]

Prints what an id (decimal) is made of, as JSON: id, ISO time, timestamp (ms since the
Unix epoch), node id and sequence, for the default layout.

  --workers N   the node ran N worker processes: also print the worker stripe
  -h, --help    this text
`;

export function inspectCommand(argv: string[]): number {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: { workers: { type: 'string' }, help: { type: 'boolean', short: 'h' } },
  });
  if (values.help) {
    process.stdout.write(INSPECT_HELP);
    return 0;
  }
  if (positionals.length !== 1) throw new UsageError('inspect takes exactly one id');
  let decoded;
  try {
    decoded = decode(positionals[0]!, values.workers === undefined ? {} : { workers: Number(values.workers) });
  } catch (error) {
    if (error instanceof InvalidArgumentError) throw new UsageError(error.message);
    throw error;
  }
  const out = {
    id: decoded.id.toString(),
    time: new Date(decoded.timestamp).toISOString(),
    timestamp: decoded.timestamp,
    nodeId: decoded.nodeId,
    sequence: decoded.sequence,
    ...(decoded.worker === undefined ? {} : { worker: decoded.worker }),
  };
  process.stdout.write(`${JSON.stringify(out)}\n`);
  return 0;
}
