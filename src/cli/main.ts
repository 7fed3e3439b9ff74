#!/usr/bin/env node
// The hailstone command: serve, get, inspect, keygen.

import { randomBytes } from 'node:crypto';
import { InvalidArgumentError } from '../errors.js';
import { ReportedFailure, UsageError, failureLine, failureOf } from './failure.js';
import { GET_HELP, getCommand } from './get.js';
import { INSPECT_HELP, inspectCommand } from './inspect.js';
import { SERVE_HELP, serveCommand } from './serve.js';

const HELP = `Usage: hailstone <command> [options]

64-bit, time-ordered, globally unique ids.

Commands:
  serve     serve ids over UDP from one node
  get       ask a server for ids
  inspect   show what an id is made of
  keygen    print a new random shared key (write it to a key file)

Run \`hailstone <command> --help\` for a command's options.
`;

async function run(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'serve':
      return serveCommand(rest);
    case 'get':
      return getCommand(rest);
    case 'inspect':
      return inspectCommand(rest);
    case 'keygen':
      process.stdout.write(`${randomBytes(32).toString('hex')}\n`);
      return 0;
    case undefined:
    case 'help':
    case '-h':
    case '--help':
      process.stdout.write(HELP);
      return command === undefined ? 2 : 0;
    default:
      throw new UsageError(`unknown command ${JSON.stringify(command)}`);
  }
}

function usageOf(argv: string[]): string {
  return { serve: SERVE_HELP, get: GET_HELP, inspect: INSPECT_HELP }[argv[0] ?? ''] ?? HELP;
}

// A reader that went away (`hailstone serve | head -1`) must never crash the command.
process.stdout.on('error', () => undefined);

run(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    const usage =
      error instanceof UsageError ||
      error instanceof InvalidArgumentError ||
      (error as { code?: string })?.code?.startsWith('ERR_PARSE_ARGS');
    if (usage) {
      process.stderr.write(`hailstone: ${(error as Error).message}\n\n${usageOf(process.argv.slice(2)).split('\n')[0]}\n`);
      process.exitCode = 2;
      return;
    }
    const failure = error instanceof ReportedFailure ? error.failure : failureOf(error);
    process.stderr.write(failureLine(failure));
    if (failure.code === 'INTERNAL') process.stderr.write(`${(error as Error)?.stack ?? String(error)}\n`);
    // Nothing left to do: sockets, timers and a cluster's IPC channel must not keep it alive.
    process.exit(1);
  },
);
