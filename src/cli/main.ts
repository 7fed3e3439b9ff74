#!/usr/bin/env node
// The hailstone command: serve, get, fleet status, inspect, keygen.
//
// Exit codes: 0 success (and --help, --version), 1 a runtime failure — one line, "hailstone: CODE:
// message", never a stack trace — and 2 bad usage. Each command's action sets
// process.exitCode.

import { Command, CommanderError } from 'commander';
import { InvalidArgumentError } from '../errors.js';
import { ReportedFailure, USAGE, UsageError, failureLine, failureOf, usageErrorOf } from './failure.js';
import { fleetProgram } from './fleet-status.js';
import { getProgram } from './get.js';
import { inspectProgram } from './inspect.js';
import { keygenProgram } from './keygen.js';
import { runServe, serveProgram } from './serve.js';
import { VERSION } from '../version.js';

const output = { outputError: (text: string, write: (s: string) => void) => write(`hailstone: ${text.replace(/^error: /, '')}`) };

function program(): Command {
  const root = new Command('hailstone')
    .description('64-bit, time-ordered, globally unique ids.')
    .version(VERSION, '-V, --version', 'print the version of hailstone')
    .addHelpText('after', "\nRun `hailstone <command> --help` for a command's options.")
    .exitOverride()
    .configureOutput(output);
  for (const command of [serveProgram(runServe), getProgram(), fleetProgram(), inspectProgram(), keygenProgram()]) {
    root.addCommand(command.exitOverride().configureOutput(output).showHelpAfterError(`(hailstone ${command.name()} --help lists the options)`));
    for (const sub of command.commands) sub.exitOverride().configureOutput(output).showHelpAfterError(`(hailstone ${command.name()} ${sub.name()} --help lists the options)`);
  }
  return root;
}

// gRPC names an etcd reached by IP address (https://10.0.0.1:2379) as the TLS server name,
// which Node warns about (DEP0123) on every run: nothing the operator can change — the
// certificate is still checked against the IP address. Every other warning is printed.
const emitWarning = process.emitWarning.bind(process) as (...args: unknown[]) => void;
process.emitWarning = ((warning: string | Error, ...rest: unknown[]) => {
  const options = rest[0] as { code?: string } | string | undefined;
  const code = typeof options === 'object' ? options?.code : rest[1];
  if (code === 'DEP0123') return;
  // The library's own warnings (a fleet server passed over…): one line, as the command says things.
  if (typeof code === 'string' && code.startsWith('HAILSTONE_')) {
    process.stderr.write(`hailstone: warning: ${typeof warning === 'string' ? warning : warning.message}\n`);
    return;
  }
  emitWarning(warning, ...rest);
}) as typeof process.emitWarning;

// A reader that went away (`hailstone serve | head -1`) must never crash the command.
process.stdout.on('error', () => undefined);

const argv = process.argv.slice(2);
const root = program();
(argv.length === 0 ? Promise.reject(new UsageError('no command given')) : root.parseAsync(argv, { from: 'user' })).then(
  () => undefined,
  (error: unknown) => {
    if (error instanceof CommanderError) {
      // Help and version are successes; everything else commander rejects is bad usage (it printed why).
      process.exitCode = error.code === 'commander.helpDisplayed' || error.code === 'commander.version' || error.exitCode === 0 ? 0 : 2;
      return;
    }
    // A worker's bad usage comes back from the primary as a reported failure: exit 2 all the same.
    const usage =
      error instanceof InvalidArgumentError ? usageErrorOf(error) : error instanceof ReportedFailure && error.failure.code === USAGE ? new UsageError(error.failure.message) : error;
    if (usage instanceof UsageError) {
      process.stderr.write(`hailstone: ${usage.message}\n`);
      if (argv.length === 0) process.stderr.write(root.helpInformation());
      process.exitCode = 2;
      return;
    }
    const failure = error instanceof ReportedFailure ? error.failure : failureOf(error);
    process.stderr.write(failureLine(failure));
    // A bug of this process: the stack helps. A worker's failure reported by the primary has
    // none worth showing (the worker logged its own): one line.
    if (failure.code === 'INTERNAL' && !(error instanceof ReportedFailure)) process.stderr.write(`${(error as Error)?.stack ?? String(error)}\n`);
    // Nothing left to do: sockets, timers and a cluster's IPC channel must not keep it alive.
    process.exit(1);
  },
);
