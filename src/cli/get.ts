// hailstone get: ask servers for ids and print them.

import { Command, Option } from 'commander';
import { hostPort } from '../address.js';
import { createClient } from '../create-client.js';
import { type NodeIdConflict, describeConflict } from '../client/conflicts.js';
import { DEFAULT_CLUSTER } from '../fleet/defaults.js';
import { DEFAULT_HOST, DEFAULT_PORT } from '../server/server.js';
import { readKeyFile } from '../protocol/auth.js';
import { type EtcdFlags, addEtcdAccessOptions, etcdOptionsOf } from './etcd-options.js';
import { choiceOption, intOption, keyFileExposure, listOption, passwordFileExposure } from './options.js';

interface GetFlags extends EtcdFlags {
  count: number;
  server: string[];
  keyFile?: string;
  format: 'dec' | 'hex' | 'json';
  timeoutMs: number;
  cluster: string;
}

export function getProgram(): Command {
  const command = new Command('get')
    .description('Ask hailstone servers for ids and print them.')
    .addOption(intOption('-n, --count <n>', 'how many ids', 'HAILSTONE_COUNT', { min: 1, max: 1_000_000, default: 1 }))
    .addOption(listOption('--server <host:port>', 'server to ask; repeat (or comma-separate) to fail over', 'HAILSTONE_SERVERS', hostPort(DEFAULT_HOST, DEFAULT_PORT)))
    .addOption(new Option('--key-file <file>', "the servers' shared key").env('HAILSTONE_KEY_FILE'))
    .addOption(choiceOption('--format <f>', 'dec: one decimal id per line; hex: one 0x-prefixed 16-digit id per line; json: one JSON array of decimal strings', 'HAILSTONE_FORMAT', ['dec', 'hex', 'json'], 'dec'))
    .addOption(listOption('--etcd <url>', 'fleet mode: ask the live servers listed in etcd (with --server: those too; https:// for TLS)', 'HAILSTONE_ETCD', 'off'));
  return addEtcdAccessOptions(command)
    .addOption(new Option('--cluster <name>', "fleet mode: the cluster's name").env('HAILSTONE_CLUSTER').default(DEFAULT_CLUSTER))
    .addOption(intOption('--timeout-ms <ms>', 'give up after this long', 'HAILSTONE_TIMEOUT_MS', { min: 1, max: 3_600_000, default: 3000 }))
    .addHelpText(
      'after',
      '\nExit codes: 0 ids printed, 1 no ids (unreachable, unavailable, timeout) or ids from two servers with one node id\n' +
        '(NODE_ID_CONFLICT: printed once each, and not to be trusted), 2 bad usage.',
    )
    .action(async (flags: GetFlags) => {
      process.exitCode = await getIds(flags);
    });
}

async function getIds(flags: GetFlags): Promise<number> {
  const key = flags.keyFile === undefined ? undefined : readKeyFile(flags.keyFile);
  const exposure = flags.keyFile === undefined ? undefined : keyFileExposure(flags.keyFile);
  if (exposure !== undefined) process.stderr.write(`hailstone: warning: ${exposure}\n`);
  const conflicts: NodeIdConflict[] = [];
  const etcd = etcdOptionsOf(flags);
  const passwordExposure = etcd === undefined || flags.etcdPasswordFile === undefined ? undefined : passwordFileExposure(flags.etcdPasswordFile);
  if (passwordExposure !== undefined) process.stderr.write(`hailstone: warning: ${passwordExposure}\n`);
  const client = createClient({
    ...(etcd !== undefined
      ? { etcd, cluster: flags.cluster, ...(flags.server.length > 0 ? { servers: flags.server } : {}) }
      : { servers: flags.server.length > 0 ? flags.server : [hostPort(DEFAULT_HOST, DEFAULT_PORT)] }),
    ...(key === undefined ? {} : { key }),
    deadlineMs: flags.timeoutMs,
    onNodeIdConflict: (c) => conflicts.push(c),
  });
  try {
    const ids = await client.nextIds(flags.count);
    // An id that arrived twice was issued twice: print it once, and fail below.
    const unique = [...new Set(ids)];
    const text =
      flags.format === 'json'
        ? JSON.stringify(unique.map((id) => id.toString()))
        : unique.map((id) => (flags.format === 'hex' ? `0x${id.toString(16).padStart(16, '0')}` : id.toString())).join('\n');
    process.stdout.write(`${text}\n`);
    const duplicates = ids.length - unique.length;
    if (conflicts.length === 0 && duplicates === 0) return 0;
    // Exit 1: these ids may also be someone else's, and a script must not take them as fine.
    process.stderr.write(`hailstone: NODE_ID_CONFLICT: ${conflictSummary(conflicts, duplicates)}\n`);
    return 1;
  } finally {
    await client.close();
  }
}

/** One line: the first pair of servers, how many more, and how many ids arrived twice. */
function conflictSummary(conflicts: NodeIdConflict[], duplicates: number): string {
  const twice = duplicates === 0 ? '' : `; ${duplicates} id(s) arrived twice and were printed once`;
  if (conflicts.length === 0) return `${duplicates} id(s) arrived twice and were printed once: two servers issue under one node id. Give every server its own --node-id`;
  const more = conflicts.length === 1 ? '' : ` (and ${conflicts.length - 1} more pair(s) of servers)`;
  return `${describeConflict(conflicts[0]!)}${more}${twice}`;
}
