// The socket I/O of the server behind one small interface, so the protocol logic never
// knows which transport carries it: Node's dgram (everywhere), or the batched native
// transport (Linux, recvmmsg/sendmmsg). The same server test suite runs over both.

export interface DatagramSource {
  readonly address: string;
  readonly port: number;
  readonly family: 'IPv4' | 'IPv6';
}

/**
 * Answers one datagram in place. The request is buf[offset, offset + length); the handler
 * writes its reply over the request (the protocol never makes a reply longer than its
 * request) and returns the reply's length, or 0 to send nothing. `length` is -1 for a
 * datagram too large for the transport to receive whole. `from` is only valid during the
 * call: a transport may reuse one object for every datagram.
 */
export type DatagramHandler = (buf: Buffer, offset: number, length: number, from: DatagramSource) => number;

export type TransportName = 'dgram' | 'native';

export interface TransportStats {
  /** Datagrams received. */
  received: number;
  /** Calls into the handler's batch loop: one per datagram with dgram, one per recvmmsg with native. */
  batches: number;
  /** Replies the kernel refused (full send buffer, unreachable, …): counted, not retried — the client retries. */
  sendFailures: number;
  /** Datagrams larger than a receive slot, handed to the handler with length -1. */
  truncated: number;
  /** Receive calls the kernel failed (not EAGAIN): counted; the socket goes on receiving. */
  receiveErrors: number;
}

export interface Transport {
  readonly name: TransportName;
  /** Binds and starts delivering datagrams to the handler. Resolves with the bound address. */
  listen(host: string, port: number, handler: DatagramHandler): Promise<{ address: string; port: number }>;
  stats(): TransportStats;
  /** Stops receiving; resolves when the socket is closed. */
  close(): Promise<void>;
}
