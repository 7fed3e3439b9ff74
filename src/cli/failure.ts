// How the command reports a failure: one line, "hailstone: CODE: what happened and what
// to do", never a stack trace — also for the errors the system hands us (EACCES, EROFS…).

import { HailstoneError, type HailstoneErrorCode, InvalidArgumentError } from '../errors.js';
import { OwnershipLostError } from '../node/store.js';

/** The code a worker process reports a UsageError under, so the primary exits 2 too. */
export const USAGE = 'USAGE';

/**
 * Every code a failure is printed with: the library's codes, bad usage, a system call's
 * errno ("EACCES", "EROFS"), a worker of --workers N that exited without saying why, and INTERNAL for an error nothing else names (a bug).
 */
export type FailureCode = HailstoneErrorCode | InvalidArgumentError['code'] | typeof USAGE | 'WORKER_FAILED' | 'INTERNAL' | `E${string}`;

/** A failure as it is printed: a stable code and a message. */
export interface Failure {
  code: FailureCode;
  message: string;
}

/** Bad command-line usage: exit code 2. */
export class UsageError extends Error {}

/**
 * The flag that sets each library argument. The library names its arguments (`allow:`,
 * `servers:`); the operator typed flags, and a message must name what they can change.
 */
const FLAG_OF: Readonly<Record<string, string>> = {
  advertise: '--advertise',
  allow: '--allow',
  backend: '--backend',
  claimWaitMs: '--claim-wait-ms',
  clockSkewMs: '--clock-skew-ms',
  cluster: '--cluster',
  coordinatorWaitMs: '--etcd-wait-ms',
  count: '--count',
  deadlineMs: '--timeout-ms',
  'etcd.endpoints': '--etcd',
  'etcd.ca': '--etcd-ca',
  'etcd.cert': '--etcd-cert',
  'etcd.key': '--etcd-key',
  'etcd.username': '--etcd-user',
  'etcd.password': '--etcd-password-file',
  host: '--host',
  httpTokenFile: '--http-token-file',
  key: '--key-file',
  keyFile: '--key-file',
  keys: '--key-file',
  layout: '--layout',
  'layout.epoch': '--epoch',
  'layout.nodeBits': '--layout node',
  'layout.sequenceBits': '--layout seq',
  'layout.tickMs': '--layout tick',
  'layout.timeBits': '--layout time',
  leaseTtlS: '--lease-ttl-s',
  maxLeadMs: '--max-lead-ms',
  maxStartupWaitMs: '--max-startup-wait-ms',
  nodeId: '--node-id',
  port: '--port',
  rateLimit: '--rate-limit',
  'rateLimit.burst': '--rate-limit',
  'rateLimit.perSecond': '--rate-limit',
  replayWindowMs: '--replay-window-ms',
  reservationMs: '--reservation-ms',
  servers: '--server',
  stateDir: '--state-dir',
  transport: '--transport',
  'worker.count': '--workers',
};

/**
 * A library's InvalidArgumentError as bad usage of the command: "--allow: …" rather than
 * "allow: …". An argument no flag sets keeps the library's wording.
 */
export function usageErrorOf(error: InvalidArgumentError): UsageError {
  const flag = FLAG_OF[error.argument];
  return new UsageError(flag === undefined ? error.message : `${flag}: ${detailOf(error)}`);
}

/** What is wrong, without the argument's name: for a message that names the flag itself. */
export function detailOf(error: InvalidArgumentError): string {
  const prefix = `${error.argument}: `;
  return error.message.startsWith(prefix) ? error.message.slice(prefix.length) : error.message;
}

/** The code and one-line message of any error. */
export function failureOf(error: unknown): Failure {
  if (error instanceof UsageError) return { code: USAGE, message: firstLine(error.message) };
  if (error instanceof HailstoneError) return { code: error.code, message: firstLine(error.message) };
  if (error instanceof InvalidArgumentError) return { code: error.code, message: firstLine(error.message) };
  if (error instanceof OwnershipLostError) return { code: 'OWNERSHIP_LOST', message: firstLine(error.message) };
  const errno = error as NodeJS.ErrnoException | undefined;
  if (typeof errno?.code === 'string' && /^E[A-Z0-9_]+$/.test(errno.code) && typeof errno.message === 'string') return { code: errno.code as `E${string}`, message: firstLine(errno.message) };
  return { code: 'INTERNAL', message: firstLine(String((error as Error)?.message ?? error)) };
}

/** A failure that came from elsewhere (a worker process), to be printed as it is. */
export class ReportedFailure extends Error {
  constructor(readonly failure: Failure) {
    super(failure.message);
  }
}

export function failureLine(failure: Failure): string {
  return `hailstone: ${failure.code}: ${failure.message}\n`;
}

function firstLine(text: string): string {
  return text.split('\n')[0]!;
}
