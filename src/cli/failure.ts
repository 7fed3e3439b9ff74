// How the command reports a failure: one line, "hailstone: CODE: what happened and what
// to do", never a stack trace — also for the errors the system hands us (EACCES, EROFS…).

import { HailstoneError, InvalidArgumentError } from '../errors.js';
import { OwnershipLostError } from '../node/store.js';

/** A failure as it is printed: a stable code and a message. */
export interface Failure {
  code: string;
  message: string;
}

/** Bad command-line usage: exit code 2. */
export class UsageError extends Error {}

/** The code and one-line message of any error. */
export function failureOf(error: unknown): Failure {
  if (error instanceof HailstoneError) return { code: error.code, message: firstLine(error.message) };
  if (error instanceof InvalidArgumentError) return { code: error.code, message: firstLine(error.message) };
  if (error instanceof OwnershipLostError) return { code: 'OWNERSHIP_LOST', message: firstLine(error.message) };
  const errno = error as NodeJS.ErrnoException | undefined;
  if (typeof errno?.code === 'string' && typeof errno.message === 'string') return { code: errno.code, message: firstLine(errno.message) };
  return { code: 'INTERNAL', message: firstLine(String((error as Error)?.message ?? error)) };
}

/** A failure that came from elsewhere (a worker process), to be printed as it is. */
export class ReportedFailure extends Error {
  constructor(readonly failure: Failure) {
    super(failure.message);
  }
}

export function failureLine(failure: Failure): string {
  return `hailstone: ${failure.code}: ${failure.message}\n`;
}

function firstLine(text: string): string {
  return text.split('\n')[0]!;
}
