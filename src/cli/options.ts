// Option parsing shared by the commands, on commander: every flag has its environment
// variable (flags win), its range checked where it is declared, and the help is generated
// from the same declarations, so the help, the parser and the variables cannot drift apart.
// A value commander rejects names the flag the user typed; the process exits 2.

import { statSync } from 'node:fs';
import { InvalidArgumentError as OptionValueError, Option } from 'commander';
import { InvalidArgumentError } from '../errors.js';
import { UsageError, detailOf } from './failure.js';

/** An integer flag in [min, max]; negative values may follow the flag as a separate argument. */
export function intOption(flags: string, description: string, env: string, range: { min: number; max: number; default?: number }): Option {
  const option = new Option(flags, description).env(env).argParser((text: string) => {
    const value = /^\s*-?\d+\s*$/.test(text) ? Number(text) : NaN;
    if (!Number.isSafeInteger(value) || value < range.min || value > range.max) {
      throw new OptionValueError(`It must be an integer from ${range.min} to ${range.max}.`);
    }
    return value;
  });
  return range.default === undefined ? option : option.default(range.default);
}

/** One of a fixed list. */
export function choiceOption(flags: string, description: string, env: string, choices: readonly string[], fallback?: string): Option {
  const option = new Option(flags, description).env(env).choices(choices);
  return fallback === undefined ? option : option.default(fallback);
}

/** A text flag parsed by `parse`, whose errors become the flag's error. */
export function parsedOption<T>(flags: string, description: string, env: string, parse: (text: string) => T, shownDefault?: string): Option {
  // commander shows no default that is undefined: say it in the description.
  const option = new Option(flags, shownDefault === undefined ? description : `${description} (default: ${shownDefault})`).env(env);
  return option.argParser((text: string) => {
    try {
      return parse(text);
    } catch (error) {
      // commander names the flag; the library's argument name would only confuse.
      throw new OptionValueError(error instanceof InvalidArgumentError ? detailOf(error) : (error as Error).message);
    }
  });
}

/** A flag that may be repeated or given comma-separated (and so its variable). */
export function listOption(flags: string, description: string, env: string, shownDefault: string): Option {
  return new Option(flags, description)
    .env(env)
    .default([], shownDefault)
    .argParser((text: string, previous: string[]) => [...previous, ...text.split(',').map((v) => v.trim()).filter((v) => v !== '')]);
}

const TRUE = ['1', 'true', 'yes', 'on'];
const FALSE = ['', '0', 'false', 'no', 'off'];

/**
 * A boolean flag with a variable. commander would treat any value of the variable as
 * "set" — HAILSTONE_RESET_STATE=0 included — so the variable's value is read here.
 */
export function booleanWithEnv(flag: boolean | undefined, env: string): boolean {
  if (flag === true) return true;
  const text = process.env[env];
  if (text === undefined) return false;
  const lower = text.trim().toLowerCase();
  if (TRUE.includes(lower)) return true;
  if (FALSE.includes(lower)) return false;
  throw new UsageError(`${env} must be 1 or 0 (true/false, yes/no), got ${JSON.stringify(text)}`);
}

/**
 * Why a key file is exposed, when users other than its owner may read (or change) it:
 * whoever has the key can forge replies that hand out ids already issued. Undefined when
 * its mode is 600 or stricter, or when it cannot be looked at (reading it then says why).
 */
export function keyFileExposure(path: string): string | undefined {
  return secretFileExposure(path, 'the key file', 'whoever reads the key can forge replies');
}

/** The same for etcd's password file: whoever reads it can act as the etcd user (take node ids, write reservations). */
export function passwordFileExposure(path: string): string | undefined {
  return secretFileExposure(path, 'the etcd password file', "whoever reads it can act as hailstone's etcd user");
}

function secretFileExposure(path: string, what: string, consequence: string): string | undefined {
  let mode: number;
  try {
    mode = statSync(path).mode & 0o777;
  } catch {
    return undefined;
  }
  if ((mode & 0o077) === 0) return undefined;
  const who = (mode & 0o007) !== 0 ? 'every user' : 'its group';
  return `${what} ${path} is open to ${who} (mode ${mode.toString(8).padStart(3, '0')}): ${consequence}; chmod 600 ${path}`;
}
