// The socket I/O of the server behind one small interface. Today: Node's dgram. A
// batched native transport can plug in beside it without touching the server logic.

export interface DatagramSource {
  address: string;
  port: number;
  family: 'IPv4' | 'IPv6';
}

export type DatagramHandler = (msg: Buffer, from: DatagramSource) => void;

export interface Transport {
  /** Binds and starts delivering datagrams to the handler. Resolves with the bound address. */
  listen(host: string, port: number, handler: DatagramHandler): Promise<{ address: string; port: number }>;
  /** Sends buf[0..length) to the source of a request. Never throws for a send that fails. */
  send(buf: Buffer, length: number, to: DatagramSource): void;
  /** Stops receiving; resolves when the socket is closed. */
  close(): Promise<void>;
}
