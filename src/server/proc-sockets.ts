// Which sockets a process has open, from Linux /proc (what `ss -p` reads): the inode of
// each `socket:[N]` descriptor. Used to name the process behind a port's guard; readable
// only for this user's processes, and empty where there is no /proc.

import { readFileSync, readdirSync, readlinkSync } from 'node:fs';

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

/** The inodes of TCP sockets listening on `port` (any address), from /proc/net/tcp and tcp6. */
export function tcpListenerInodes(port: number): Set<string> {
  const inodes = new Set<string>();
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text: string;
    try {
      text = readFileSync(table, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      // local_address is HEXADDR:HEXPORT; state 0A is LISTEN; the inode is the tenth field.
      if (f.length < 10 || f[3] !== '0A') continue;
      if (Number.parseInt(f[1]!.split(':')[1]!, 16) === port) inodes.add(f[9]!);
    }
  }
  return inodes;
}

/** Who listens on TCP `port`: "pid N (command line)", or undefined when it cannot be told. */
export function describeTcpListener(port: number): string | undefined {
  const inodes = tcpListenerInodes(port);
  if (inodes.size === 0) return undefined;
  const pid = processWithSocket(inodes);
  if (pid === undefined) return undefined;
  let command = '';
  try {
    command = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean).join(' ').slice(0, 120);
  } catch {
    // exited meanwhile
  }
  return `pid ${pid}${command === '' ? '' : ` (${command})`}`;
}
