// Logging a run of failures as one episode: a first line, a summary at most every 10 s
// with the count, one recovery line. Driven by a hand-set clock.

import { describe, expect, it } from 'vitest';
import { FailureEpisode, loggable } from '../src/log-episode.js';
import { ManualClock } from './support/clock.js';

interface Line {
  level: 'warn' | 'error';
  fields: Record<string, unknown>;
  message: string;
}

function recorder(): { lines: Line[]; logger: { warn(f: object, m: string): void; error(f: object, m: string): void } } {
  const lines: Line[] = [];
  return {
    lines,
    logger: {
      warn: (fields, message) => lines.push({ level: 'warn', fields: fields as Record<string, unknown>, message }),
      error: (fields, message) => lines.push({ level: 'error', fields: fields as Record<string, unknown>, message }),
    },
  };
}

describe('FailureEpisode', () => {
  it('a failure every 250 ms for 25 s: one first line, two summaries, one recovery line with the count', () => {
    const clock = new ManualClock(1000);
    const { lines, logger } = recorder();
    const episode = new FailureEpisode(logger, { what: 'reservation writes', fields: { nodeId: 4 }, now: clock.read });
    for (let t = 0; t <= 25_000; t += 250) {
      episode.failed(`ENOSPC at ${t}`, { code: 'ENOSPC' });
      clock.advance(250);
    }
    expect(episode.active).toBe(true);
    expect(episode.count).toBe(101);
    expect(lines.map((l) => l.level)).toEqual(['error', 'error', 'error']);
    expect(lines[0]).toEqual({ level: 'error', fields: { nodeId: 4, code: 'ENOSPC' }, message: 'ENOSPC at 0' });
    expect(lines[1]!.message).toBe('reservation writes still failing after 10000 ms (41 failures, 40 since the last line): ENOSPC at 10000');
    expect(lines[1]!.fields).toEqual({ nodeId: 4, code: 'ENOSPC', failures: 41, failingForMs: 10_000 });
    expect(lines[2]!.message).toMatch(/^reservation writes still failing after 20000 ms \(81 failures, 40 since the last line\)/);

    clock.advance(500);
    episode.recovered('issuing again');
    expect(lines).toHaveLength(4);
    expect(lines[3]).toEqual({
      level: 'warn',
      fields: { nodeId: 4, failures: 101, failedForMs: 25_750 },
      message: 'reservation writes recovered after 25750 ms (101 failures): issuing again',
    });
    expect(episode.active).toBe(false);
    expect(episode.count).toBe(0);
  });

  it('recovered() without an episode logs nothing; the next failure starts a new episode with its own first line', () => {
    const clock = new ManualClock(0);
    const { lines, logger } = recorder();
    const episode = new FailureEpisode(logger, { what: 'etcd', level: 'warn', now: clock.read });
    episode.recovered();
    expect(lines).toEqual([]);
    episode.failed('down');
    clock.advance(100);
    episode.recovered();
    expect(lines.map((l) => l.message)).toEqual(['down', 'etcd recovered after 100 ms (1 failure)']);
    clock.advance(60_000);
    episode.failed('down again');
    expect(lines.at(-1)).toEqual({ level: 'warn', fields: {}, message: 'down again' });
  });

  it('abandoned(): one last line with the count, only while failing', () => {
    const clock = new ManualClock(0);
    const { lines, logger } = recorder();
    const episode = new FailureEpisode(logger, { what: 'reservation writes', now: clock.read });
    episode.abandoned('the node closed');
    expect(lines).toEqual([]);
    episode.failed('EIO');
    episode.failed('EIO');
    clock.advance(700);
    episode.abandoned('the node closed');
    expect(lines.at(-1)!.message).toBe('reservation writes failed for 700 ms (2 failures) until the node closed');
    expect(episode.active).toBe(false);
  });

  it('never logs a wait that is not a finite, safe number: the field is left out', () => {
    const { lines, logger } = recorder();
    const episode = new FailureEpisode(logger, { what: 'etcd', now: () => 0 });
    episode.failed('etcd unreachable', { waitMs: Number.MAX_SAFE_INTEGER, retryInMs: Infinity, sinceMs: NaN, backoffMs: 200 });
    expect(lines[0]!.fields).toEqual({ backoffMs: 200 });
    expect(JSON.stringify(lines)).not.toMatch(/9007199254740991|null|Infinity/);
    expect(loggable({ a: -Infinity, b: 'x', c: 0 })).toEqual({ b: 'x', c: 0 });
  });
});
