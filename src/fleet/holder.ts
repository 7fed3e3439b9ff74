// Who holds a claim, read from the claim key's value (JSON written by the holder).

import type { ClaimInfo } from './etcd.js';

/** What a claim key's value says of its holder; undefined when it is not a JSON object (fields may still be missing). */
export function holderOf(value: string | null): Partial<ClaimInfo> | undefined {
  try {
    const info = JSON.parse(value ?? '') as unknown;
    return typeof info === 'object' && info !== null ? (info as Partial<ClaimInfo>) : undefined;
  } catch {
    return undefined;
  }
}

/** The instance a claim key's value names, if it names one. */
export function holderInstance(value: string | null): string | undefined {
  return holderOf(value)?.instance;
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
