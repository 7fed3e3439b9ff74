#!/usr/bin/env node
// The hailstone command: serve, get, inspect, keygen.

import { randomBytes } from 'node:crypto';
import { HailstoneError, InvalidArgumentError } from '../errors.js';
import { UsageError } from './args.js';
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
    } else if (error instanceof HailstoneError) {
      process.stderr.write(`hailstone: ${error.code}: ${error.message}\n`);
      process.exitCode = 1;
    } else {
      process.stderr.write(`hailstone: ${(error as Error)?.stack ?? String(error)}\n`);
      process.exitCode = 1;
    }
  },
);
