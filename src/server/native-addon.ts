// Loads the native UDP addon (native/udp.c), built by `npm install` where it can be.
// Loading is synchronous and happens once; when the addon is missing or does not load,
// the reason is kept so the server can say once why it uses dgram instead.

import { createRequire } from 'node:module';
import { HailstoneError } from '../errors.js';
import { findAddon, missingAddonReason } from '../native-addons.js';

/** Counters in the order native/udp.c keeps them. */
export const NATIVE_STAT_NAMES = ['received', 'batches', 'sent', 'sendFailures', 'receiveErrors', 'truncated'] as const;

export interface NativeUdpAddon {
  /** Datagrams one recvmmsg may receive. */
  readonly maxBatch: number;
  open(
    host: string,
    port: number,
    options: { reusePort: number; receiveBufferBytes: number },
    arena: ArrayBuffer,
    meta: ArrayBuffer,
    slotSize: number,
    batch: number,
    onBatch: (received: number) => void,
  ): [handle: unknown, boundPort: number];
  close(handle: unknown, onClosed: () => void): void;
  stats(handle: unknown, out: Float64Array): void;
}

export type NativeAvailability = { available: true; addon: NativeUdpAddon; path: string } | { available: false; reason: string };

let cached: NativeAvailability | undefined;

/** The error for asking for the native transport where it cannot load. */
export function nativeUnavailableError(reason: string): HailstoneError {
  return new HailstoneError('NATIVE_UNAVAILABLE', `the native UDP transport is unavailable: ${reason}; use the dgram transport (--transport dgram)`);
}

/** Whether the native transport can be used here, and if not, why. */
export function nativeAvailability(): NativeAvailability {
  if (cached !== undefined) return cached;
  if (process.platform !== 'linux') return (cached = { available: false, reason: `recvmmsg/sendmmsg need Linux, this is ${process.platform}` });
  const path = findAddon('hailstone_udp.node', 'HAILSTONE_NATIVE_ADDON');
  if (path === undefined) return (cached = { available: false, reason: missingAddonReason('hailstone_udp.node') });
  try {
    const addon = createRequire(import.meta.url)(path) as NativeUdpAddon;
    if (typeof addon.open !== 'function' || typeof addon.maxBatch !== 'number') {
      return (cached = { available: false, reason: `${path} is not hailstone's UDP addon` });
    }
    return (cached = { available: true, addon, path });
  } catch (error) {
    return (cached = { available: false, reason: `${path} did not load: ${(error as Error).message.split('\n')[0]}` });
  }
}
