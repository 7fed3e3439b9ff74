// Test helpers for ids over HTTP: a raw TCP connection to send any bytes at any pace and
// see what comes back, and a free TCP port.

import { type Socket, connect } from 'node:net';

/** A raw connection: what it received so far, and whether the server closed it. */
export interface RawConnection {
  socket: Socket;
  received: () => string;
  /** Resolves once the connection is closed (by either side). */
  closed: Promise<void>;
  isClosed: () => boolean;
  write(text: string): void;
  destroy(): void;
}

export async function rawConnection(port: number, host = '127.0.0.1'): Promise<RawConnection> {
  const socket = connect(port, host);
  let data = '';
  let isClosed = false;
  socket.setEncoding('utf8');
  socket.on('data', (chunk: string) => {
    data += chunk;
  });
  socket.on('error', () => undefined);
  const closed = new Promise<void>((resolve) =>
    socket.once('close', () => {
      isClosed = true;
      resolve();
    }),
  );
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', () => resolve());
    socket.once('error', reject);
  });
  return {
    socket,
    received: () => data,
    closed,
    isClosed: () => isClosed,
    write: (text) => {
      if (!socket.destroyed) socket.write(text);
    },
    destroy: () => socket.destroy(),
  };
}

/** The responses in a raw connection's bytes: status, headers (lower-case names) and body (by content-length). */
export function parseResponses(text: string): { status: number; headers: Record<string, string>; body: string }[] {
  const out: { status: number; headers: Record<string, string>; body: string }[] = [];
  let rest = text;
  for (;;) {
    const end = rest.indexOf('\r\n\r\n');
    if (end < 0) return out;
    const [statusLine, ...lines] = rest.slice(0, end).split('\r\n');
    const headers: Record<string, string> = {};
    for (const line of lines) {
      const colon = line.indexOf(':');
      headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
    }
    const length = Number(headers['content-length'] ?? 0);
    const body = rest.slice(end + 4, end + 4 + length);
    if (body.length < length) return out;
    out.push({ status: Number(statusLine!.split(' ')[1]), headers, body });
    rest = rest.slice(end + 4 + length);
  }
}

/** A loopback TCP port that was just bound and closed again (free, barring a race). */
export { freeTcpPort } from '../../bench/harness.js';
