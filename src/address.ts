// Network addresses as people read and type them.

import { lookup } from 'node:dns/promises';
import { isIP, isIPv4, isIPv6 } from 'node:net';
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


/** Whether `port` is one a server may listen on: an integer from 0 (any free one) to 65535. */
export function isListenPort(port: unknown): port is number {
  return Number.isInteger(port) && (port as number) >= 0 && (port as number) <= 65535;
}

/** `port` as a server's listening port, or InvalidArgumentError naming `argument`. */
export function listenPort(port: unknown, argument = 'port'): number {
  if (!isListenPort(port)) throw new InvalidArgumentError(argument, `must be an integer from 0 to 65535, got ${describe(port)}`);
  return port;
}

/**
 * "host:port" ("[v6]:port" for an IPv6 address) as typed: the host and port, the port from
 * 1 to 65535. `argument` names the option in the error.
 */
export function parseHostPort(argument: string, text: string): { host: string; port: number } {
  const m = typeof text === 'string' ? (/^\[([^\]]+)\]:(\d+)$/.exec(text) ?? /^([^:]+):(\d+)$/.exec(text)) : null;
  if (m === null) throw new InvalidArgumentError(argument, `${describe(text)} is not host:port (e.g. 127.0.0.1:7077, [::1]:7077 or ids.example.com:7077)`);
  const port = Number(m[2]);
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw new InvalidArgumentError(argument, `${describe(text)}: port ${m[2]} is out of range (1 to 65535)`);
  }
  return { host: m[1]!, port };
}

/**
 * Why a client cannot send to this "host:port", or undefined when it can: the wildcard
 * addresses a server binds to listen on every interface (0.0.0.0, ::) name no machine.
 */
export function unusableAddress(address: string): string | undefined {
  const m = /^\[([^\]]+)\]:(\d+)$/.exec(address) ?? /^([^:]+):(\d+)$/.exec(address);
  if (m === null) return `${describe(address)} is not host:port`;
  const host = m[1]!;
  if (isIP(host) !== 0 && /^(0\.0\.0\.0|::|0:0:0:0:0:0:0:0)$/.test(host)) return `${host} is the wildcard address (every interface of the server), which names no machine a client can reach`;
  return undefined;
}

/** --advertise: "host:port", or a host alone (a bare IPv6 address, or one in brackets). */
export function parseAdvertise(text: string): { host: string; port: number | undefined } {
  if (typeof text !== 'string' || text === '') throw new InvalidArgumentError('advertise', `must be HOST:PORT or HOST, got ${describe(text)}`);
  const parsed = /:\d+$/.test(text) && (!text.includes(':', text.indexOf(':') + 1) || text.startsWith('[')) ? parseHostPort('advertise', text) : { host: text.replace(/^\[(.*)\]$/, '$1'), port: undefined };
  // An IP address, or a DNS name (letters, digits, '-', '.'): what a client can resolve.
  const { host } = parsed;
  if (isIP(host) === 0 && !/^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$/.test(host)) {
    throw new InvalidArgumentError('advertise', `${describe(text)} is not HOST:PORT or HOST (an IP address or a DNS name)`);
  }
  return parsed;
}
