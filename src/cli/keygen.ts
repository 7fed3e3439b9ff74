// hailstone keygen: a new random shared key, for --key-file.

import { randomBytes } from 'node:crypto';
import { Command } from 'commander';

export function keygenProgram(): Command {
  return new Command('keygen')
    .description('Print a new random 32-byte shared key in hex: write it to a key file (mode 600) for serve and get --key-file.')
    .action(() => {
      process.stdout.write(`${randomBytes(32).toString('hex')}\n`);
    });
}
