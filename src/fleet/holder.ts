// Who holds a claim, read from the claim key's value (JSON written by the holder).

import type { ClaimInfo } from './etcd.js';

/** The instance a claim key's value names, if it names one. */
export function holderInstance(value: string | null): string | undefined {
  try {
    return (JSON.parse(value ?? '') as ClaimInfo).instance;
  } catch {
    return undefined;
  }
}

/** Describes a claim's holder from the key's value. */
export function describeHolder(value: string | null): string {
  try {
    const info = JSON.parse(value ?? '') as ClaimInfo;
    return `instance ${info.instance} on ${info.host} (udp ${info.udp}, pid ${info.pid}, since ${info.startedAt})`;
  } catch {
    return 'an unknown instance';
  }
}
