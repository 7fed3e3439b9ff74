// Which sockets a process has open, from Linux /proc (what `ss -p` reads): the inode of
// each `socket:[N]` descriptor. Used to name the process behind a port's guard; readable
// only for this user's processes, and empty where there is no /proc.

import { readdirSync, readlinkSync } from 'node:fs';

/** The inodes ("N" of socket:[N]) of the sockets process `pid` has open; empty when it cannot be read. */
export function socketInodesOf(pid: number): string[] {
  let fds: string[];
  try {
    fds = readdirSync(`/proc/${pid}/fd`);
  } catch {
    return [];
  }
  const inodes: string[] = [];
  for (const fd of fds) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (m !== null) inodes.push(m[1]!);
    } catch {
      // closed meanwhile
    }
  }
  return inodes;
}

/** The first process other than this one with a descriptor on any of these socket inodes. */
export function processWithSocket(inodes: Set<string>): number | undefined {
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return undefined;
  }
  for (const entry of entries) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    if (socketInodesOf(Number(entry)).some((inode) => inodes.has(inode))) return Number(entry);
  }
  return undefined;
}
