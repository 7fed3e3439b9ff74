// Network addresses as people read and type them.

import { lookup } from 'node:dns/promises';
import { isIPv4, isIPv6 } from 'node:net';
import { InvalidArgumentError, describe } from './errors.js';

/** "host:port", with an IPv6 host in brackets. */
export function hostPort(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

/**
 * The address to bind: an IP address as it is, a host name resolved (its first IPv4
 * address, as "localhost" is expected to mean, else its first address).
 */
export async function resolveHost(host: unknown): Promise<string> {
  if (typeof host !== 'string' || host === '') throw new InvalidArgumentError('host', `must be an IP address or a host name, got ${describe(host)}`);
  if (isIPv4(host) || isIPv6(host)) return host;
  let addresses: { address: string; family: number }[];
  try {
    addresses = await lookup(host, { all: true });
  } catch (error) {
    throw new InvalidArgumentError('host', `${describe(host)} does not resolve to an address of this machine (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`);
  }
  const chosen = addresses.find((a) => a.family === 4) ?? addresses[0];
  if (chosen === undefined) throw new InvalidArgumentError('host', `${describe(host)} resolves to no address`);
  return chosen.address;
}

