// Binding an HTTP server (ids over HTTP, or metrics): a port that cannot be bound is one
// error with a code and the flag to change, and errors after it listens never crash.

import type { Server as HttpServer } from 'node:http';
import { hostPort } from '../address.js';
import { HailstoneError, type HailstoneErrorCode } from '../errors.js';
import { portHeldError, whoHolds } from './port-guard.js';
import { describeTcpListener } from './proc-sockets.js';

export function listenHttp(
  http: HttpServer,
  host: string,
  port: number,
  what: { code: HailstoneErrorCode; name: string; flag: string; afterListening: (error: Error) => void },
): Promise<{ host: string; port: number }> {
  return new Promise((resolve, reject) => {
    http.once('error', async (error: NodeJS.ErrnoException) => {
      // Another hailstone server's HTTP port: in its own words (port-guard.ts).
      const holding = error.code === 'EADDRINUSE' && what.code === 'HTTP_PORT_IN_USE' && port !== 0 ? await whoHolds(port, 'http') : undefined;
      if (holding !== undefined && holding.kind !== 'none') return reject(Object.assign(portHeldError(port, holding, 'http'), { cause: error }));
      // Who holds it, as PORT_IN_USE names the holder of a UDP port: read from /proc, when it can be.
      const holder = error.code === 'EADDRINUSE' ? describeTcpListener(port) : undefined;
      const why =
        error.code === 'EADDRINUSE'
          ? `is in use by ${holder ?? `another process (see: ss -tlpn sport = :${port})`}`
          : error.code === 'EACCES'
            ? 'needs privileges this process lacks'
            : `cannot be bound (${error.message})`;
      reject(new HailstoneError(what.code, `the ${what.name} port ${hostPort(host, port)} ${why}: choose another with ${what.flag} HOST:PORT`, { cause: error }));
    });
    http.listen(port, host, () => {
      http.removeAllListeners('error');
      // Errors after listening (a client that resets) must never crash the process.
      http.on('error', what.afterListening);
      const a = http.address() as { address: string; port: number };
      resolve({ host: a.address, port: a.port });
    });
  });
}
