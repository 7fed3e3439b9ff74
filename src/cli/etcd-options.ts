// How every command that talks to etcd reaches it: the endpoints' TLS files and the etcd
// user, declared once for serve, get and fleet status. etcdctl's own variables
// (ETCDCTL_CACERT, ETCDCTL_CERT, ETCDCTL_KEY) are honoured when ours are unset and the
// endpoints are https://, so an operator's etcdctl environment works as it is. A password
// is never a flag (it would show in `ps`): a file, or HAILSTONE_ETCD_PASSWORD.

import { readFileSync } from 'node:fs';
import { type Command, Option } from 'commander';
import { type EtcdOptions, etcdTargets } from '../fleet/etcd.js';
import { readTlsMaterial, tlsGiven } from '../fleet/etcd-tls.js';
import { UsageError } from './failure.js';

export interface EtcdFlags {
  etcd: string[];
  etcdCa?: string;
  etcdCert?: string;
  etcdKey?: string;
  etcdUser?: string;
  etcdPasswordFile?: string;
}

/** Adds the TLS and authentication flags for etcd to a command (after its --etcd). */
export function addEtcdAccessOptions(command: Command): Command {
  return command
    .addOption(new Option('--etcd-ca <file>', "etcd TLS: CA certificate (PEM) that signs etcd's certificate (default: ETCDCTL_CACERT, else the system's CAs)").env('HAILSTONE_ETCD_CA'))
    .addOption(new Option('--etcd-cert <file>', 'etcd TLS: client certificate (PEM), for an etcd with --client-cert-auth (default: ETCDCTL_CERT)').env('HAILSTONE_ETCD_CERT'))
    .addOption(new Option('--etcd-key <file>', "etcd TLS: the client certificate's key (PEM) (default: ETCDCTL_KEY)").env('HAILSTONE_ETCD_KEY'))
    .addOption(new Option('--etcd-user <name>', 'etcd authentication: the user (its password from --etcd-password-file or HAILSTONE_ETCD_PASSWORD)').env('HAILSTONE_ETCD_USER'))
    .addOption(new Option('--etcd-password-file <file>', "etcd authentication: a file holding the user's password").env('HAILSTONE_ETCD_PASSWORD_FILE'));
}

/** The etcd options the flags (and variables) give; undefined when no --etcd was given. */
export function etcdOptionsOf(flags: EtcdFlags, env: NodeJS.ProcessEnv = process.env): EtcdOptions | undefined {
  // Without --etcd they are not used (they may come from an environment set for etcdctl).
  if (flags.etcd.length === 0) return undefined;
  // etcdctl's variables only where TLS is asked for: an http:// etcd with ETCDCTL_CACERT set
  // in the environment is not an error.
  const https = flags.etcd.every((e) => /^https:\/\//i.test(e));
  const fallback = (ours: string | undefined, theirs: string): string | undefined => ours ?? (https && env[theirs] !== '' ? env[theirs] : undefined);
  const ca = fallback(flags.etcdCa, 'ETCDCTL_CACERT');
  const cert = fallback(flags.etcdCert, 'ETCDCTL_CERT');
  const key = fallback(flags.etcdKey, 'ETCDCTL_KEY');
  const password = passwordOf(flags, env);
  if (password !== undefined && flags.etcdUser === undefined) throw new UsageError('an etcd password was given (--etcd-password-file or HAILSTONE_ETCD_PASSWORD) without --etcd-user');
  if (flags.etcdUser !== undefined && password === undefined) {
    throw new UsageError(`--etcd-user ${flags.etcdUser} needs its password: --etcd-password-file FILE, or HAILSTONE_ETCD_PASSWORD`);
  }
  const options: EtcdOptions = {
    endpoints: flags.etcd,
    ...(ca === undefined ? {} : { ca }),
    ...(cert === undefined ? {} : { cert }),
    ...(key === undefined ? {} : { key }),
    ...(flags.etcdUser === undefined ? {} : { username: flags.etcdUser, password: password! }),
  };
  // Checked now, before a port is bound or a worker starts: a wrong path is bad usage.
  etcdTargets(options.endpoints, tlsGiven(options));
  readTlsMaterial(options);
  return options;
}

function passwordOf(flags: EtcdFlags, env: NodeJS.ProcessEnv): string | undefined {
  if (flags.etcdPasswordFile !== undefined) {
    let text: string;
    try {
      text = readFileSync(flags.etcdPasswordFile, 'utf8');
    } catch (error) {
      throw new UsageError(`--etcd-password-file: cannot read ${flags.etcdPasswordFile} (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`);
    }
    // One line, as `echo secret > file` writes it: the line end is not part of the password.
    const password = text.replace(/\r?\n$/, '');
    if (password === '') throw new UsageError(`--etcd-password-file: ${flags.etcdPasswordFile} is empty`);
    return password;
  }
  const password = env.HAILSTONE_ETCD_PASSWORD;
  return password === undefined || password === '' ? undefined : password;
}
