// Errors hailstone throws. Two kinds:
//  - HailstoneError: the generator (or node, server, client) refuses to act right now.
//    It carries a stable `code` to branch on and, where waiting helps, `retryAfterMs`.
//  - InvalidArgumentError (a RangeError): the caller passed something out of range.
//    It names the argument and the allowed range; retrying the same call cannot help.

export type HailstoneErrorCode =
  /** Logical time would run further ahead of the clock than maxLeadMs allows. Retry after retryAfterMs. */
  | 'CLOCK_BEHIND'
  /** The clock reads earlier than the layout's epoch: the machine's clock is wrong. */
  | 'CLOCK_BEFORE_EPOCH'
  /** The clock function returned NaN, an infinity or a value outside a JavaScript Date's range. */
  | 'CLOCK_INVALID'
  /** Time has run past the last tick the layout can hold: configure a new layout. */
  | 'LAYOUT_EXPIRED'
  /** The next id would pass the durable reservation; it is being extended. Retry after retryAfterMs. */
  | 'LIMIT_REACHED'
  /** Another live process holds this node's state directory. */
  | 'STATE_LOCKED'
  /** The state file cannot be trusted (truncated, bad checksum, another node or layout). */
  | 'STATE_CORRUPT'
  /**
   * The node can no longer prove it owns its node id (its lock file was removed, its state
   * dir replaced, its claim taken): it stopped issuing for good. Ask another server; restart it.
   */
  | 'OWNERSHIP_LOST'
  /** At startup the clock is further behind the stored reservation than the node may wait. */
  | 'CLOCK_FAR_BEHIND'
  /** The node was closed. */
  | 'CLOSED'
  /** A request could not be answered in time (client). */
  | 'TIMEOUT'
  /** The service answered that it cannot issue ids now (client). Retry after retryAfterMs. */
  | 'UNAVAILABLE'
  /** Nothing listens at any of the servers' addresses: ICMP port unreachable (client). Start one, or fix the address. */
  | 'UNREACHABLE'
  /** A reply broke the protocol's rules (client). */
  | 'BAD_REPLY'
  /** The native UDP transport was asked for where its addon is not built or does not load (server). */
  | 'NATIVE_UNAVAILABLE'
  /** The UDP port is taken by another process (server). Stop it or choose another port. */
  | 'PORT_IN_USE'
  /** The UDP address cannot be bound: not an address of this machine, or a privileged port (server). */
  | 'BIND_FAILED'
  /** The metrics/health HTTP port is taken or cannot be bound (server). */
  | 'METRICS_PORT_IN_USE'
  /** The HTTP port for ids (--http) is taken or cannot be bound (server). */
  | 'HTTP_PORT_IN_USE'
  /** The state directory cannot be used: not writable, not a directory, read-only, or not a real file system. */
  | 'STATE_DIR_UNUSABLE'
  /** A worker process kept crashing after it had started; the server stopped (command line). */
  | 'WORKER_CRASH_LOOP'
  /** Fleet mode: the node id asked for is held by another live instance. */
  | 'NODE_ID_TAKEN'
  /** Fleet mode: every node id of the cluster is held by a live instance. */
  | 'NO_FREE_NODE_ID'
  /** Fleet mode: etcd could not be reached within the startup bound. */
  | 'COORDINATOR_UNAVAILABLE'
  /**
   * Fleet mode: etcd answered but refused this process — its TLS certificate is not trusted,
   * names another host or expired, no client certificate was given, the password is wrong, or
   * the user may not use the cluster's keys. The message names which; retrying cannot help.
   */
  | 'COORDINATOR_REFUSED';

export class HailstoneError extends Error {
  override readonly name = 'HailstoneError';
  readonly code: HailstoneErrorCode;
  /** How long to wait before trying again, when waiting can help. */
  readonly retryAfterMs: number | undefined;

  constructor(code: HailstoneErrorCode, message: string, options?: { retryAfterMs?: number; cause?: unknown }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.retryAfterMs = options?.retryAfterMs;
  }
}

export class InvalidArgumentError extends RangeError {
  override readonly name = 'InvalidArgumentError';
  readonly code = 'INVALID_ARGUMENT';
  /** The argument (or option) that was out of range, e.g. "nodeId" or "layout.timeBits". */
  readonly argument: string;

  constructor(argument: string, message: string) {
    super(`${argument}: ${message}`);
    this.argument = argument;
  }
}

/** Throws unless `value` is an integer in [min, max]. */
export function checkInteger(argument: string, value: unknown, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw new InvalidArgumentError(argument, `must be an integer from ${min} to ${max}, got ${describe(value)}`);
  }
  return value;
}

/** A short, safe rendering of a bad value for an error message. */
export function describe(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value);
  if (typeof value === 'bigint') return `${value}n`;
  if (typeof value === 'number' || typeof value === 'boolean' || value == null) return String(value);
  return Object.prototype.toString.call(value);
}
