// Flag and environment parsing shared by the commands. Flags win over HAILSTONE_*
// variables, which win over defaults. Bad input is a UsageError: exit code 2.

import { readFileSync } from 'node:fs';
import { parseKey } from '../protocol/auth.js';
import { UsageError } from './failure.js';

export function envOr(flag: string | undefined, envName: string): string | undefined {
  if (flag !== undefined) return flag;
  const value = process.env[envName];
  return value === undefined || value === '' ? undefined : value;
}

export function intOption(name: string, text: string | undefined, fallback: number, min: number, max: number): number {
  if (text === undefined) return fallback;
  const value = /^-?\d+$/.test(text.trim()) ? Number(text) : NaN;
  if (!Number.isSafeInteger(value) || value < min || value > max) {
    throw new UsageError(`${name} must be an integer from ${min} to ${max}, got ${JSON.stringify(text)}`);
  }
  return value;
}

export function choiceOption<T extends string>(name: string, text: string | undefined, fallback: T, choices: readonly T[]): T {
  if (text === undefined) return fallback;
  if (!(choices as readonly string[]).includes(text)) {
    throw new UsageError(`${name} must be one of ${choices.join(', ')}, got ${JSON.stringify(text)}`);
  }
  return text as T;
}

export function readKeyFile(path: string | undefined): Uint8Array | undefined {
  if (path === undefined) return undefined;
  let content: Buffer;
  try {
    content = readFileSync(path);
  } catch (error) {
    throw new UsageError(`cannot read the key file ${path}: ${(error as Error).message}`);
  }
  const key = parseKey(content);
  if (key.length < 16) throw new UsageError(`the key in ${path} is ${key.length} bytes; at least 16 are needed (make one with \`hailstone keygen\`)`);
  return key;
}

/** Splits repeated or comma-separated list flags. */
export function listOption(values: string[] | undefined, envName: string): string[] {
  const raw = values !== undefined && values.length > 0 ? values : (process.env[envName] ?? '').split(',');
  return raw.flatMap((v) => v.split(',')).map((v) => v.trim()).filter((v) => v !== '');
}
