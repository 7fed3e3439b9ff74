// A server as the client knows it: "host:port" parsed, its name resolved (all addresses,
// IPv4 first) and resolved again when it may have moved, and when it asked to be left alone.

import { lookup as dnsLookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import { parseHostPort } from '../address.js';

export interface Endpoint {
  host: string;
  port: number;
  text: string;
  /** The addresses it resolved to (an IP literal: itself); undefined until resolved, or when stale. */
  addresses: string[] | undefined;
  /** Which of them the next request goes to. */
  nextAddress: number;
  /** Asked to wait (UNAVAILABLE) until then, Date.now() ms. */
  notBefore: number;
}

export function parseEndpoint(text: string): Endpoint {
  const { host, port } = parseHostPort('servers', text);
  return { host, port, text, addresses: isIP(host) === 0 ? undefined : [host], nextAddress: 0, notBefore: 0 };
}

export async function defaultLookup(hostname: string): Promise<string[]> {
  return (await dnsLookup(hostname, { all: true })).map((a) => a.address);
}

/** The address as a reply's source shows it (an IPv4-mapped IPv6 address as IPv4). */
export function plainAddress(address: string): string {
  return address.startsWith('::ffff:') && isIP(address.slice(7)) === 4 ? address.slice(7) : address;
}

/** What an UNREACHABLE error says: the servers that answered with ICMP port unreachable. */
export function nothingListening(endpoints: Endpoint[]): string {
  return `nothing listening on ${endpoints.map((e) => e.text).join(', ')} (ICMP port unreachable)`;
}

/** The endpoint's addresses, resolving its name when needed; an error says why it cannot. */
export async function addressesOf(endpoint: Endpoint, lookup: (hostname: string) => Promise<string[]>): Promise<string[]> {
  if (endpoint.addresses !== undefined) return endpoint.addresses;
  let found: string[];
  try {
    found = await lookup(endpoint.host);
  } catch (error) {
    throw new Error(`cannot resolve ${endpoint.host}: ${(error as Error).message}`);
  }
  const valid = found.filter((a) => isIP(a) !== 0).map(plainAddress);
  if (valid.length === 0) throw new Error(`cannot resolve ${endpoint.host}: no addresses`);
  // IPv4 first: a server bound to 127.0.0.1 is not reached through ::1.
  endpoint.addresses = [...valid.filter((a) => isIP(a) === 4), ...valid.filter((a) => isIP(a) === 6)];
  return endpoint.addresses;
}
