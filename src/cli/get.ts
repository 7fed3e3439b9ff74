// hailstone get: ask servers for ids and print them.

import { Command, Option } from 'commander';
import { createClient } from '../client/client.js';
import { describeConflict } from '../client/conflicts.js';
import { DEFAULT_HOST, DEFAULT_PORT } from '../server/server.js';
import { readKeyFile } from '../protocol/auth.js';
import { choiceOption, intOption, keyFileExposure, listOption } from './options.js';

interface GetFlags {
  count: number;
  server: string[];
  keyFile?: string;
  format: 'dec' | 'hex' | 'json';
  timeoutMs: number;
  etcd: string[];
  cluster: string;
}

export function getProgram(): Command {
  return new Command('get')
    .description('Ask hailstone servers for ids and print them.')
    .addOption(intOption('-n, --count <n>', 'how many ids', 'HAILSTONE_COUNT', { min: 1, max: 1_000_000, default: 1 }))
    .addOption(listOption('--server <host:port>', 'server to ask; repeat (or comma-separate) to fail over', 'HAILSTONE_SERVERS', `${DEFAULT_HOST}:${DEFAULT_PORT}`))
    .addOption(new Option('--key-file <file>', "the servers' shared key").env('HAILSTONE_KEY_FILE'))
    .addOption(choiceOption('--format <f>', 'dec: one decimal id per line; hex: one 0x-prefixed 16-digit id per line; json: one JSON array of decimal strings', 'HAILSTONE_FORMAT', ['dec', 'hex', 'json'], 'dec'))
    .addOption(listOption('--etcd <url>', 'fleet mode: ask the live servers listed in etcd (with --server: those too)', 'HAILSTONE_ETCD', 'off'))
    .addOption(new Option('--cluster <name>', "fleet mode: the cluster's name").env('HAILSTONE_CLUSTER').default('default'))
    .addOption(intOption('--timeout-ms <ms>', 'give up after this long', 'HAILSTONE_TIMEOUT_MS', { min: 1, max: 3_600_000, default: 3000 }))
    .addHelpText('after', '\nExit codes: 0 ids printed, 1 no ids (unreachable, unavailable, timeout), 2 bad usage.')
    .action(async (flags: GetFlags) => {
      process.exitCode = await getIds(flags);
    });
}

async function getIds(flags: GetFlags): Promise<number> {
  const key = flags.keyFile === undefined ? undefined : readKeyFile(flags.keyFile);
  const exposure = flags.keyFile === undefined ? undefined : keyFileExposure(flags.keyFile);
  if (exposure !== undefined) process.stderr.write(`hailstone: warning: ${exposure}\n`);
  const client = createClient({
    ...(flags.etcd.length > 0
      ? { etcd: { endpoints: flags.etcd }, cluster: flags.cluster, ...(flags.server.length > 0 ? { servers: flags.server } : {}) }
      : { servers: flags.server.length > 0 ? flags.server : [`${DEFAULT_HOST}:${DEFAULT_PORT}`] }),
    ...(key === undefined ? {} : { key }),
    deadlineMs: flags.timeoutMs,
    // Printed, not thrown: the ids themselves are fine to use only if the operator fixes this.
    onNodeIdConflict: (c) => process.stderr.write(`hailstone: warning: NODE_ID_CONFLICT: ${describeConflict(c)}\n`),
  });
  try {
    const ids = await client.nextIds(flags.count);
    const text =
      flags.format === 'json'
        ? JSON.stringify(ids.map((id) => id.toString()))
        : ids.map((id) => (flags.format === 'hex' ? `0x${id.toString(16).padStart(16, '0')}` : id.toString())).join('\n');
    process.stdout.write(`${text}\n`);
    return 0;
  } finally {
    await client.close();
  }
}
