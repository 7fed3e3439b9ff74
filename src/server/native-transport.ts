// The Transport over the native addon: batched receives and sends, replies written in place.
//
// The arena holds one slot per datagram of a batch; the addon receives into it with one
// recvmmsg and calls onBatch once. onBatch hands each slot to the handler — the same
// handler the dgram transport calls — which writes the reply over the request; the addon
// then sends every reply with one sendmmsg. The source of each datagram is read lazily
// from the metadata array through one reused object: no JS object per datagram.

import { MAX_REQUEST_SIZE } from '../protocol/wire.js';
import { NATIVE_STAT_NAMES, type NativeUdpAddon, nativeAvailability, nativeUnavailableError } from './native-addon.js';
import type { DatagramHandler, DatagramSource, Transport, TransportStats } from './transport.js';

/** Bytes per receive slot: anything longer is not a request, and arrives truncated (length -1). */
export const SLOT_SIZE = MAX_REQUEST_SIZE;
const META_INTS = 8;

/** The current datagram's source, decoded from the metadata only when asked for. */
class SlotSource implements DatagramSource {
  slot = 0;
  private readonly bytes: Uint8Array;

  constructor(private readonly meta: Int32Array) {
    this.bytes = new Uint8Array(meta.buffer);
  }

  get family(): 'IPv4' | 'IPv6' {
    return this.meta[this.slot * META_INTS + 2] === 6 ? 'IPv6' : 'IPv4';
  }

  get port(): number {
    return this.meta[this.slot * META_INTS + 3]!;
  }

  get address(): string {
    const b = this.bytes;
    const at = this.slot * META_INTS * 4 + 16;
    if (this.family === 'IPv4') return dotted(b, at);
    // Written as Node's dgram writes them, so logs, rate-limit keys and allowlists see the
    // same text whichever transport received the datagram.
    let mapped = b[at + 10] === 0xff && b[at + 11] === 0xff;
    for (let i = 0; i < 10 && mapped; i++) mapped = b[at + i] === 0;
    if (mapped) return `::ffff:${dotted(b, at + 12)}`;
    const groups: number[] = [];
    for (let i = 0; i < 16; i += 2) groups.push((b[at + i]! << 8) | b[at + i + 1]!);
    return compressIpv6(groups);
  }
}

function dotted(b: Uint8Array, at: number): string {
  return `${b[at]}.${b[at + 1]}.${b[at + 2]}.${b[at + 3]}`;
}

/** RFC 5952 text: lower-case hex, the longest run of two or more zero groups as "::". */
export function compressIpv6(groups: number[]): string {
  let bestAt = -1;
  let bestLength = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLength) {
      bestAt = i;
      bestLength = j - i;
    }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestAt < 0) return hex.join(':');
  return `${hex.slice(0, bestAt).join(':')}::${hex.slice(bestAt + bestLength).join(':')}`;
}

export interface NativeTransportOptions {
  /** SO_REUSEPORT: several processes bind one port and the kernel spreads datagrams among them (worker mode). */
  reusePort?: boolean;
  receiveBufferBytes?: number;
  /** Datagrams per recvmmsg, 1..64 (default 64). */
  batch?: number;
}

export class NativeTransport implements Transport {
  readonly name = 'native';
  private readonly addon: NativeUdpAddon;
  private handle: unknown;
  private readonly statsOut = new Float64Array(NATIVE_STAT_NAMES.length);
  private closing: Promise<void> | undefined;

  /** Throws NATIVE_UNAVAILABLE (with the reason) where the addon cannot be loaded. */
  constructor(private readonly options: NativeTransportOptions = {}) {
    const availability = nativeAvailability();
    if (!availability.available) throw nativeUnavailableError(availability.reason);
    this.addon = availability.addon;
  }

  listen(host: string, port: number, handler: DatagramHandler): Promise<{ address: string; port: number }> {
    const batch = Math.max(1, Math.min(this.addon.maxBatch, this.options.batch ?? this.addon.maxBatch));
    const arena = new ArrayBuffer(batch * SLOT_SIZE);
    const metaBuffer = new ArrayBuffer(batch * META_INTS * 4);
    const buf = Buffer.from(arena);
    const meta = new Int32Array(metaBuffer);
    const source = new SlotSource(meta);
    const onBatch = (received: number): void => {
      for (let i = 0; i < received; i++) {
        source.slot = i;
        const m = i * META_INTS;
        meta[m + 1] = handler(buf, i * SLOT_SIZE, meta[m]!, source);
      }
    };
    try {
      const [handle, boundPort] = this.addon.open(
        host,
        port,
        { reusePort: this.options.reusePort ? 1 : 0, receiveBufferBytes: this.options.receiveBufferBytes ?? 0 },
        arena,
        metaBuffer,
        SLOT_SIZE,
        batch,
        onBatch,
      );
      this.handle = handle;
      return Promise.resolve({ address: host, port: boundPort });
    } catch (error) {
      return Promise.reject(error);
    }
  }

  stats(): TransportStats {
    if (this.handle !== undefined) this.addon.stats(this.handle, this.statsOut);
    const at = (name: (typeof NATIVE_STAT_NAMES)[number]) => this.statsOut[NATIVE_STAT_NAMES.indexOf(name)]!;
    return { received: at('received'), batches: at('batches'), sendFailures: at('sendFailures'), truncated: at('truncated'), receiveErrors: at('receiveErrors') };
  }

  close(): Promise<void> {
    this.closing ??= new Promise<void>((resolve) => {
      const handle = this.handle;
      if (handle === undefined) return resolve();
      // The last counters stay readable after the socket (and its native state) is gone.
      this.addon.stats(handle, this.statsOut);
      this.handle = undefined;
      this.addon.close(handle, resolve);
    });
    return this.closing;
  }
}
