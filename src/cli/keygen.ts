// hailstone keygen: a new random shared key, for --key-file. Printed, or written with
// --out to a file only its owner can read: whoever reads the key can forge replies.

import { randomBytes } from 'node:crypto';
import { closeSync, fsyncSync, openSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { Command, Option } from 'commander';
import { UsageError } from './failure.js';

export function keygenProgram(): Command {
  return new Command('keygen')
    .description('Make a new random 32-byte shared key, as 64 hex digits, for serve and get --key-file: printed, or written with --out to a new file readable by its owner only (mode 600).')
    .addOption(new Option('-o, --out <file>', 'write the key to this new file (mode 600) instead of printing it; an existing file is not replaced'))
    .addOption(new Option('--force', 'with --out: replace an existing file'))
    .action((flags: { out?: string; force?: boolean }) => {
      const text = `${randomBytes(32).toString('hex')}\n`;
      if (flags.out === undefined) {
        if (flags.force === true) throw new UsageError('--force replaces the file of --out: give --out FILE');
        process.stdout.write(text);
        return;
      }
      if (flags.force === true) replaceKeyFile(flags.out, text);
      else createKeyFile(flags.out, text);
    });
}

/** Writes a new file with mode 600 from its creation: the key is never readable by others. */
function createKeyFile(path: string, text: string): void {
  let fd: number;
  try {
    fd = openSync(path, 'wx', 0o600);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') {
      throw new UsageError(`${path} already exists: keygen does not replace a key that may be in use; pass --force to replace it, or choose another --out`);
    }
    throw error;
  }
  try {
    writeSync(fd, text);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/**
 * --force: a new file renamed over the old one. Rewriting the old file in place would keep
 * its mode, and a reader holding it open would see the new key; a server reading it at
 * that moment could see half of one.
 */
function replaceKeyFile(path: string, text: string): void {
  const temporary = join(dirname(path), `.${basename(path)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  createKeyFile(temporary, text);
  try {
    renameSync(temporary, path);
  } catch (error) {
    unlinkSync(temporary);
    throw error;
  }
}
