// Which process holds a claim, said precisely enough to prove it dead.
//
// A claim key names its holder's host and pid. On its own that proves nothing: pids are
// reused, a container may share a host name, and a machine that rebooted counts its pids
// again. Linux says more: the boot (/proc/sys/kernel/random/boot_id), the pid namespace
// (/proc/self/ns/pid) and when the process started, in clock ticks since boot (field 22
// of /proc/PID/stat). Same boot and namespace, and no process with that pid and that start
// time: the holder is gone, and so are its timers — it can renew nothing and issue nothing.
// Anywhere that cannot be read (another OS, another container, another machine), nothing
// is proved and a claimant waits for the holder's lease as before.

import { readFileSync, readlinkSync } from 'node:fs';
import { hostname } from 'node:os';

/** What a claim says of where its holder runs, beyond the host name. */
export interface ProcessIdentity {
  /** The kernel's boot id. */
  boot: string;
  /** The pid namespace, e.g. "pid:[4026531836]". */
  pidns: string;
  /** The process's start time, clock ticks since boot, as /proc/PID/stat gives it. */
  procStart: string;
}

/** The host name a server goes by: HAILSTONE_HOSTNAME (a pod's name), else the machine's. */
export function serverHostname(): string {
  return process.env.HAILSTONE_HOSTNAME || hostname();
}

/** A process's start time (field 22 of /proc/PID/stat), or undefined when there is no such process. */
export function processStart(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    // The command name (field 2) is in parentheses and may hold spaces or parentheses itself.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return fields[19];
  } catch {
    return undefined;
  }
}

let own: ProcessIdentity | null | undefined;

/** This process's identity, or undefined where /proc cannot tell it. */
export function ownIdentity(): ProcessIdentity | undefined {
  if (own === undefined) {
    try {
      const boot = readFileSync('/proc/sys/kernel/random/boot_id', 'latin1').trim();
      const pidns = readlinkSync('/proc/self/ns/pid');
      const procStart = processStart(process.pid);
      own = boot !== '' && procStart !== undefined ? { boot, pidns, procStart } : null;
    } catch {
      own = null;
    }
  }
  return own ?? undefined;
}

/** What a claim says of its holder that the proof reads. */
export interface HolderProcess {
  host?: unknown;
  pid?: unknown;
  boot?: unknown;
  pidns?: unknown;
  procStart?: unknown;
}

/**
 * Whether the holder named in a claim is provably gone: it ran on this machine (same host
 * name, same boot) in this pid namespace, and no process with its pid and start time
 * exists now. False whenever that cannot be known.
 */
export function provablyGone(holder: HolderProcess | undefined, self: ProcessIdentity | undefined = ownIdentity()): boolean {
  if (holder === undefined || self === undefined) return false;
  const { host, pid, boot, pidns, procStart } = holder;
  if (host !== serverHostname() || boot !== self.boot || pidns !== self.pidns) return false;
  if (typeof pid !== 'number' || !Number.isSafeInteger(pid) || pid <= 0 || typeof procStart !== 'string' || procStart === '') return false;
  const now = processStart(pid);
  return now === undefined || now !== procStart;
}
