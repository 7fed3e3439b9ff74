// Chooses the server's transport: native where its addon loads, dgram otherwise.

import type { NodeLogger } from '../logger.js';
import { DgramTransport } from './dgram-transport.js';
import { nativeAvailability, nativeUnavailableError } from './native-addon.js';
import { NativeTransport } from './native-transport.js';
import type { Transport, TransportName } from './transport.js';

/** 'auto' (the default) prefers native and falls back to dgram; the others insist. */
export type TransportChoice = 'auto' | TransportName;
export const TRANSPORT_CHOICES = ['auto', 'native', 'dgram'] as const;

const RECEIVE_BUFFER_BYTES = 4 * 1024 * 1024;
let fallbackLogged = false;

/**
 * The transport a choice means on this machine. 'native' throws NATIVE_UNAVAILABLE where
 * the addon cannot load; 'auto' then means dgram, and says why once per process.
 */
export function resolveTransport(choice: TransportChoice, logger?: NodeLogger): TransportName {
  if (choice === 'dgram') return 'dgram';
  const availability = nativeAvailability();
  if (availability.available) return 'native';
  if (choice === 'native') throw nativeUnavailableError(availability.reason);
  if (!fallbackLogged && logger !== undefined) {
    fallbackLogged = true;
    logger.warn({ transport: 'dgram', reason: availability.reason }, `native UDP transport unavailable (${availability.reason}); using dgram`);
  }
  return 'dgram';
}

/** Makes the transport for a choice (see resolveTransport). */
export function createTransport(choice: TransportChoice, options: { reusePort?: boolean; logger?: NodeLogger } = {}): Transport {
  return resolveTransport(choice, options.logger) === 'native'
    ? new NativeTransport({ receiveBufferBytes: RECEIVE_BUFFER_BYTES, reusePort: options.reusePort ?? false })
    : new DgramTransport({ receiveBufferBytes: RECEIVE_BUFFER_BYTES });
}
