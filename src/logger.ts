// The logger the library takes and the one it uses by default. One concern, one module: the
// server, the fleet and the node all log through this shape, and none of them needs the
// others to get it.

import { createRequire } from 'node:module';

const loadModule = createRequire(import.meta.url);

/** A logger with pino's call shape, so a pino logger can be passed as is. */
export interface NodeLogger {
  info(fields: object, message: string): void;
  warn(fields: object, message: string): void;
  error(fields: object, message: string): void;
}

/**
 * The default: warnings and errors as pino JSON lines on stderr (level as a number, time,
 * pid, hostname, msg), the same shape as the command line's logs; nothing at info.
 */
export const stderrLogger: NodeLogger = {
  // Nothing is logged at info: pino is not even loaded for it.
  info() {},
  warn: (fields, message) => stderrPino().warn(fields, message),
  error: (fields, message) => stderrPino().error(fields, message),
};

// pino (29 modules) is loaded with the first warning, not on import: most programs that
// import hailstone never log one, and an import should cost what it uses.
let pinoOnStderr: NodeLogger | undefined;
function stderrPino(): NodeLogger {
  if (pinoOnStderr === undefined) {
    const { pino, destination } = loadModule('pino') as typeof import('pino');
    pinoOnStderr = pino({ level: 'warn' }, destination({ fd: 2, sync: true }));
  }
  return pinoOnStderr;
}

