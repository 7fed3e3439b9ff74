// hailstone get: ask a server for ids and print them, one per line.

import { parseArgs } from 'node:util';
import { createClient } from '../client/client.js';
import { describeConflict } from '../client/conflicts.js';
import { DEFAULT_HOST, DEFAULT_PORT } from '../server/server.js';
import { choiceOption, envOr, intOption, listOption, readKeyFile } from './args.js';

export const GET_HELP = `Usage: hailstone get [-n N] [--server HOST:PORT]... [--key-file F] [--format dec|hex|json]

Asks a hailstone server for ids and prints them, one per line.

  -n, --count N       how many ids (default 1)
  --server HOST:PORT  server to ask; repeat to fail over (env HAILSTONE_SERVERS, comma-separated;
                      default ${DEFAULT_HOST}:${DEFAULT_PORT})
  --key-file F        shared key file (env HAILSTONE_KEY_FILE)
  --format F          dec (default), hex (16 digits) or json (one JSON string per line)
  --timeout-ms MS     give up after this long (default 3000)
  -h, --help          this text

Exit codes: 0 ids printed, 1 no ids (unreachable, unavailable, timeout), 2 bad usage.
`;

export async function getCommand(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      count: { type: 'string', short: 'n' },
      server: { type: 'string', multiple: true },
      'key-file': { type: 'string' },
      format: { type: 'string' },
      'timeout-ms': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    process.stdout.write(GET_HELP);
    return 0;
  }
  const count = intOption('--count', values.count, 1, 1, 1_000_000);
  const format = choiceOption('--format', values.format, 'dec', ['dec', 'hex', 'json'] as const);
  const deadlineMs = intOption('--timeout-ms', values['timeout-ms'], 3000, 1, 3_600_000);
  const servers = listOption(values.server, 'HAILSTONE_SERVERS');
  const key = readKeyFile(envOr(values['key-file'], 'HAILSTONE_KEY_FILE'));
  const client = createClient({
    servers: servers.length > 0 ? servers : [`${DEFAULT_HOST}:${DEFAULT_PORT}`],
    ...(key === undefined ? {} : { key }),
    deadlineMs,
    // Printed, not thrown: the ids themselves are fine to use only if the operator fixes this.
    onNodeIdConflict: (c) => process.stderr.write(`hailstone: warning: NODE_ID_CONFLICT: ${describeConflict(c)}\n`),
  });
  try {
    const ids = await client.nextIds(count);
    const lines = ids.map((id) =>
      format === 'hex' ? id.toString(16).padStart(16, '0') : format === 'json' ? JSON.stringify(id.toString()) : id.toString(),
    );
    process.stdout.write(`${lines.join('\n')}\n`);
    return 0;
  } finally {
    await client.close();
  }
}
