// Chooses the server's transport: native where its addon loads, dgram otherwise.

import type { NodeLogger } from '../node/node.js';
import { DgramTransport } from './dgram-transport.js';
import { nativeAvailability } from './native-addon.js';
import { NativeTransport } from './native-transport.js';
import type { Transport } from './transport.js';

/** 'auto' (the default) prefers native and falls back to dgram; the others insist. */
export type TransportChoice = 'auto' | 'native' | 'dgram';
export const TRANSPORT_CHOICES = ['auto', 'native', 'dgram'] as const;

const RECEIVE_BUFFER_BYTES = 4 * 1024 * 1024;
let fallbackLogged = false;

/**
 * Makes the transport for a choice. 'native' throws NATIVE_UNAVAILABLE where the addon
 * cannot load; 'auto' then uses dgram and logs why, once per process.
 */
export function createTransport(choice: TransportChoice, options: { reusePort?: boolean; logger?: NodeLogger } = {}): Transport {
  if (choice === 'dgram') return new DgramTransport({ receiveBufferBytes: RECEIVE_BUFFER_BYTES });
  const availability = nativeAvailability();
  if (choice === 'auto' && !availability.available) {
    if (!fallbackLogged) {
      fallbackLogged = true;
      options.logger?.warn({ transport: 'dgram', reason: availability.reason }, `native UDP transport unavailable (${availability.reason}); using dgram`);
    }
    return new DgramTransport({ receiveBufferBytes: RECEIVE_BUFFER_BYTES });
  }
  return new NativeTransport({ receiveBufferBytes: RECEIVE_BUFFER_BYTES, reusePort: options.reusePort ?? false });
}
