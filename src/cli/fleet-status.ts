// hailstone fleet status: the fleet as etcd holds it — one row per node id held (holder,
// lease left, each stripe's R and how far ahead of now), reservations with no live claim,
// and how many node ids are free — as a table or JSON. Read-only: it writes nothing.

import { Command, Option } from 'commander';
import { HailstoneError } from '../errors.js';
import { DEFAULT_CLUSTER } from '../fleet/defaults.js';
import type { FleetStatus, StripeStatus } from '../fleet/status.js';
import { type EtcdFlags, addEtcdAccessOptions, etcdOptionsOf } from './etcd-options.js';
import { UsageError } from './failure.js';
import { choiceOption, listOption } from './options.js';

interface StatusFlags extends EtcdFlags {
  cluster: string;
  format: 'table' | 'json';
}

export function fleetProgram(): Command {
  const status = new Command('status')
    .description("List the fleet's node ids as etcd holds them: holder, lease left, each stripe's reservation; reservations with no live claim; free ids.")
    .addOption(listOption('--etcd <url>', 'etcd endpoints (repeat or comma-separate; https:// for TLS)', 'HAILSTONE_ETCD', 'none: required'));
  return new Command('fleet').description('Fleet mode tools.').addCommand(
    addEtcdAccessOptions(status)
      .addOption(new Option('--cluster <name>', "the cluster's name").env('HAILSTONE_CLUSTER').default(DEFAULT_CLUSTER))
      .addOption(choiceOption('--format <f>', 'table: for people; json: one JSON object', 'HAILSTONE_STATUS_FORMAT', ['table', 'json'], 'table'))
      .addHelpText('after', '\nExit codes: 0 listed, 1 etcd did not answer (COORDINATOR_UNAVAILABLE) or refused (COORDINATOR_REFUSED), 2 bad usage.')
      .action(async (flags: StatusFlags) => {
        process.exitCode = await printStatus(flags);
      }),
  );
}

async function printStatus(flags: StatusFlags): Promise<number> {
  const etcdOptions = etcdOptionsOf(flags);
  if (etcdOptions === undefined) throw new UsageError('fleet status needs --etcd (or HAILSTONE_ETCD)');
  // etcd's client is loaded only now: --help and bad usage do not pay for it.
  const { checkCluster } = await import('../fleet/etcd.js');
  const { coordinatorMessage, coordinatorUnreachable } = await import('../fleet/coordinator.js');
  const { etcdCoordinator } = await import('../fleet/etcd-adapter.js');
  const { etcdRefusal } = await import('../fleet/etcd-refusal.js');
  const { readFleetStatus } = await import('../fleet/status.js');
  const cluster = checkCluster(flags.cluster);
  const coordinator = etcdCoordinator(etcdOptions);
  let status: FleetStatus;
  try {
    status = await readFleetStatus(coordinator, cluster, { now: Date.now });
  } catch (error) {
    const refused = etcdRefusal(error, { etcd: etcdOptions, cluster, role: 'status' });
    if (refused !== undefined) throw new HailstoneError('COORDINATOR_REFUSED', refused, { cause: error });
    if (coordinatorUnreachable(error)) {
      throw new HailstoneError('COORDINATOR_UNAVAILABLE', `etcd at ${coordinator.describe} did not answer (${coordinatorMessage(error)}): start etcd, or check --etcd`, { cause: error });
    }
    throw error;
  } finally {
    coordinator.close();
  }
  process.stdout.write(flags.format === 'json' ? `${JSON.stringify(status, null, 2)}\n` : table(status));
  return 0;
}

function stripeText(s: StripeStatus): string {
  if (s.reservation === undefined) return `${s.stripe} ?`;
  const ahead = s.aheadMs!;
  return `${s.stripe} ${new Date(s.reservation).toISOString()} (${ahead >= 0 ? '+' : ''}${formatMs(ahead)})`;
}

function formatMs(ms: number): string {
  return Math.abs(ms) < 10_000 ? `${Math.round(ms)} ms` : `${Math.round(ms / 1000)} s`;
}

/** Columns padded to their widest cell. */
function columns(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ')).join('\n') + '\n';
}

function table(status: FleetStatus): string {
  const lines: string[] = [];
  lines.push(`cluster ${status.cluster}: ${status.nodes.length} node id(s) held, ${status.freeIds} free, ${status.unclaimed.length} with reservations and no live claim (etcd revision ${status.revision})\n`);
  if (status.nodes.length > 0) {
    const rows = [['NODE', 'HOST', 'UDP', 'PID', 'VERSION', 'STARTED', 'LEASE LEFT', 'RESERVATIONS (R, ahead of now)']];
    for (const n of status.nodes) {
      const h = n.holder;
      const lease = n.leaseLeftS === undefined ? 'gone' : `${n.leaseLeftS} s of ${n.leaseTtlS} s`;
      rows.push([String(n.nodeId), h.host ?? '?', h.udp === '' ? 'none (http only)' : (h.udp ?? '?'), String(h.pid ?? '?'), h.version ?? '?', h.startedAt ?? '?', lease, n.stripes.map(stripeText).join(', ') || 'none yet']);
    }
    lines.push(columns(rows));
  }
  if (status.unclaimed.length > 0) {
    // etcd keeps no record of how a claim ended (a clean stop revokes the lease, a crash lets
    // it run out: both just delete the key), so both are said.
    lines.push('\nreservations with no live claim (their holder stopped — released at a clean stop, or its lease ran out; the next holder of the node id starts above them):\n');
    lines.push(columns([['NODE', 'RESERVATIONS (R, ahead of now)'], ...status.unclaimed.map((u) => [String(u.nodeId), u.stripes.map(stripeText).join(', ')])]));
  }
  return lines.join('');
}
