// The real storage path, proven on the code that runs (not the simulated disk): a node on
// the real file system under strace, every system call on its state dir recorded with its
// wall-clock time. Before each new reservation is in effect, the trace must show, in this
// order and after the previous one: the temp file written, fsynced, renamed onto the state
// file, and the directory fsynced. Skipping RealFile.sync() or syncDir's fsync
// (src/node/storage.ts) turns this red; the simulated-disk tests cannot see either.

import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { exited, spawnTracked } from './support/child.js';
import { requirePrerequisite } from './support/prerequisite.js';

const root = mkdtempSync(join(tmpdir(), 'hailstone-trace-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
const straceWorks = process.platform === 'linux' && spawnSync('strace', ['-V']).status === 0;
requirePrerequisite(straceWorks, 'strace (Debian package strace) to trace the real storage path');

interface Call {
  at: number;
  name: string;
  text: string;
}

/** The system calls of the trace, with their start time (seconds → ms). */
function parse(trace: string): Call[] {
  const calls: Call[] = [];
  for (const line of trace.split('\n')) {
    const m = /^(?:\[pid\s+\d+\]\s+|\d+\s+)?(\d+\.\d+)\s+(\w+)\((.*)$/.exec(line);
    if (m !== null) calls.push({ at: Number(m[1]) * 1000, name: m[2]!, text: m[3]! });
  }
  return calls;
}

function last(calls: Call[], match: (c: Call) => boolean): Call | undefined {
  return calls.filter(match).at(-1);
}

describe.runIf(straceWorks)('the real storage path under strace', () => {
  it('each reservation is used only after: temp written, temp fsynced, renamed onto the state file, directory fsynced', { timeout: 60_000 }, async () => {
    const dir = join(root, 'state');
    const out = join(root, 'seen.json');
    const traceFile = join(root, 'trace.txt');
    const child = spawnTracked('strace', [
      '-f', '-ttt', '-y', '-qq', '-o', traceFile,
      '-e', 'trace=openat,write,pwrite64,writev,fsync,fdatasync,rename,renameat,renameat2',
      process.execPath, '--import', 'tsx', 'test/fixtures/renewing-node.ts', dir, out, '1500',
    ]);
    expect(await exited(child)).toBe(0);
    const { seen } = JSON.parse(readFileSync(out, 'utf8')) as { seen: { at: number; reservedUntil: number }[] };
    // Renewals every ~50 ms for 1.5 s: plenty to check, whatever the machine's load.
    expect(seen.length).toBeGreaterThanOrEqual(5);
    const state = join(dir, 'node-5.w0-1.state');
    const calls = parse(readFileSync(traceFile, 'utf8')).filter((c) => c.text.includes(dir));
    // k = 0: the first reservation, written while the node opened; then every renewal.
    for (let k = 0; k < seen.length; k++) {
      const window = calls.filter((c) => c.at > (k === 0 ? 0 : seen[k - 1]!.at) && c.at <= seen[k]!.at);
      const rename = last(window, (c) => c.name.startsWith('rename') && c.text.includes(`"${state}"`));
      const context = `reservation ${k} (in effect at ${seen[k]!.at}): ${window.map((c) => `${c.name}(${c.text.slice(0, 80)}`).join(' | ')}`;
      expect(rename, context).toBeDefined();
      const temp = /"([^"]+\.tmp)"/.exec(rename!.text)![1]!;
      const before = window.filter((c) => c.at <= rename!.at && c.text.includes(temp));
      const lastWrite = last(before, (c) => /^(p?write|writev)/.test(c.name));
      const sync = last(before, (c) => /^f(data)?sync$/.test(c.name));
      expect(lastWrite, context).toBeDefined();
      expect(sync, `${context}: the temp file was never fsynced before its rename`).toBeDefined();
      expect(sync!.at, context).toBeGreaterThanOrEqual(lastWrite!.at);
      // The directory's own descriptor (strace -y: "19</path/state>"), finished or "<unfinished ...>".
      const dirSync = window.find((c) => c.at >= rename!.at && /^f(data)?sync$/.test(c.name) && c.text.replace(/^\d+/, '').startsWith(`<${dir}>`));
      expect(dirSync, `${context}: the directory was never fsynced after the rename`).toBeDefined();
      expect(temp.startsWith(`${state}.`)).toBe(true);
    }
  });
});
