// Why a server's socket could not be bound, said so that an operator knows what to do:
// which hailstone server holds the port, or that another program does, or that the address
// or the privileges are wrong.

import { hostPort } from '../address.js';
import { HailstoneError } from '../errors.js';
import { portHeldError, whoHolds } from './port-guard.js';

/** A bind failure as a HailstoneError saying what to do; other errors as they are. */
export async function bindError(error: unknown, host: string, port: number): Promise<unknown> {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  if (code === 'EADDRINUSE') {
    // A hailstone server holds it (answering, or stopped): name it. Otherwise some other program does.
    const holding = port === 0 ? undefined : await whoHolds(port);
    if (holding !== undefined && holding.kind !== 'none') return portHeldError(port, holding);
    return new HailstoneError('PORT_IN_USE', `UDP port ${port} on ${host} is in use by another process: stop it, or choose another port (--port)`, { cause: error });
  }
  if (code === 'EACCES' || code === 'EADDRNOTAVAIL') {
    const why = code === 'EACCES' ? 'binding it needs privileges this process lacks (ports below 1024)' : `${host} is not an address of this machine`;
    return new HailstoneError('BIND_FAILED', `cannot bind UDP ${hostPort(host, port)}: ${why}; choose another --host or --port`, { cause: error });
  }
  return error;
}
