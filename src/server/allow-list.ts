// --allow: the source networks a server answers, as a BlockList checked per datagram.

import { BlockList, isIPv4, isIPv6 } from 'node:net';
import { InvalidArgumentError, describe } from '../errors.js';

/** Parses CIDRs into a BlockList used as an allowlist. Throws naming the bad entry. */
export function parseAllowList(cidrs: string[]): BlockList {
  const list = new BlockList();
  for (const cidr of cidrs) {
    const [address, bitsText, extra] = cidr.trim().split('/');
    const family = address !== undefined && isIPv4(address) ? 'ipv4' : address !== undefined && isIPv6(address) ? 'ipv6' : undefined;
    const max = family === 'ipv4' ? 32 : 128;
    const bits = bitsText === undefined ? max : Number(bitsText);
    if (family === undefined || extra !== undefined || !Number.isInteger(bits) || bits < 0 || bits > max || bitsText === '') {
      throw new InvalidArgumentError('allow', `${describe(cidr)} is not a CIDR such as 10.0.0.0/8 or ::1/128`);
    }
    list.addSubnet(address!, bits, family);
  }
  return list;
}
