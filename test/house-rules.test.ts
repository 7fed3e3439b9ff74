// House rules, checked on every run: dependencies point one way. The server, the client
// and the node know nothing of fleet mode — fleet mode builds on them (a node source for
// the server, a discovery source for the client) and the CLI and the entry points compose
// the two. The generator alone reaches no sockets, no etcd and no state files.
//
// Each rule is also run over a copy of the sources with one forbidden import added, so the
// test is shown to fail when the rule is broken.

import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { type Sources, closureOf, edgesOf, importsOf, readSources, withoutComments } from './support/imports.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const sources = readSources(root);

/** Imports from the server, the client or the node into fleet mode. */
function upwardImports(s: Sources): string[] {
  return edgesOf(s)
    .filter((e) => /^src\/(server|client|node)\//.test(e.from) && e.to.startsWith('src/fleet/'))
    .map((e) => `${e.from} imports ${e.to}`);
}

// What the generator must never load: etcd, sockets, the node's state files and locks.
// The WASM loader's one read of the module file is the exception.
const FORBIDDEN_FOR_GENERATOR = [/^etcd3$/, /^node:(dgram|net|http|https|cluster|child_process)$/, /^(dgram|net|http|https|fs|node:fs|node:fs\/promises)$/, /^src\/(node|server|fleet|client|cli|protocol)\//];
const GENERATOR_MAY_READ_FILES = 'src/backend/wasm-loader.ts';

function generatorLeaks(s: Sources): string[] {
  const leaks: string[] = [];
  // Every import of every module the generator loads (not only the first path to each).
  for (const [module, chain] of closureOf(s, 'src/generator.ts')) {
    for (const to of importsOf(module, s.get(module) ?? '')) {
      if (!FORBIDDEN_FOR_GENERATOR.some((rule) => rule.test(to))) continue;
      if (to === 'node:fs' && module === GENERATOR_MAY_READ_FILES) continue;
      leaks.push([...chain, to].join(' -> '));
    }
  }
  return leaks;
}

// Fleet mode reaches etcd only through the coordinator port: one adapter loads etcd3.
const ETCD_ADAPTER = 'src/fleet/etcd-adapter.ts';

function etcd3Importers(s: Sources): string[] {
  return edgesOf(s)
    .filter((e) => e.to === 'etcd3' && e.from !== ETCD_ADAPTER)
    .map((e) => `${e.from} imports etcd3`);
}

// Fleet mode runs on a FleetRuntime (src/fleet/runtime.ts): the simulator drives it in virtual
// time only if nothing in src/fleet/ reads the real clock, sets a real timer or draws real
// randomness. The etcd adapter and the TLS files it follows are the edge that may.
const FLEET_EDGE = new Set([ETCD_ADAPTER, 'src/fleet/etcd-credentials.ts']);
const REAL_TIME =
  /\bDate\s*(\.\s*now|\[\s*['"]now['"]\s*\])|\bperformance\b|\bnew Date\s*(\(\s*\)|(?!\s*\())|(?<![.\w])Date\s*\(\s*\)|\bset(Timeout|Interval|Immediate)\b|\bprocess\.(hrtime|uptime)\b|\bAbortSignal\.timeout\b|\bMath\.random\b|\bgetRandomValues\b|['"](node:)?(timers|timers\/promises|perf_hooks)['"]|\brandom(Bytes|UUID|Int)\b/g;

function fleetRealTime(s: Sources): string[] {
  const found: string[] = [];
  for (const [path, text] of s) {
    if (!path.startsWith('src/fleet/') || FLEET_EDGE.has(path)) continue;
    for (const match of withoutComments(text).matchAll(REAL_TIME)) found.push(`${path}: ${match[0]}`);
  }
  return found;
}

describe('house rules', () => {
  it('reads the project: the modules the rules speak of exist and import what they should', () => {
    for (const path of ['src/server/server.ts', 'src/client/client.ts', 'src/node/node.ts', 'src/generator.ts', 'src/backend/wasm-loader.ts']) {
      expect(sources.has(path), path).toBe(true);
    }
    // The parser sees each kind of import the rules depend on.
    const closure = closureOf(sources, 'src/generator.ts');
    expect(closure.has('src/backend/wasm-loader.ts')).toBe(true);
    expect(closure.has('node:fs')).toBe(true);
    expect(edgesOf(sources).some((e) => e.from.startsWith('src/fleet/') && e.to === 'etcd3')).toBe(true);
  });

  it('the server, the client and the node import nothing from fleet mode', () => {
    expect(upwardImports(sources)).toEqual([]);
  });

  it("the generator's imports reach no etcd, no sockets and no state files", () => {
    expect(generatorLeaks(sources)).toEqual([]);
  });

  it('only the etcd adapter imports etcd3', () => {
    expect(sources.has(ETCD_ADAPTER)).toBe(true);
    expect(etcd3Importers(sources)).toEqual([]);
  });

  it('fleet mode outside the etcd adapter reads no real clock, sets no real timer and draws no real randomness', () => {
    expect(fleetRealTime(sources)).toEqual([]);
  });

  describe('each rule fails when it is broken', () => {
    const withLine = (path: string, line: string): Sources => new Map([...sources, [path, `${line}\n${sources.get(path)}`]]);

    it.each([
      ['src/server/server.ts', "import type { FleetMember } from '../fleet/member.js';", 'src/fleet/member.ts'],
      ['src/client/client.ts', "const m = await import('../fleet/etcd.js');", 'src/fleet/etcd.ts'],
      ['src/node/node.ts', "export { claimNodeId } from '../fleet/claim.js';", 'src/fleet/claim.ts'],
    ])('%s importing fleet mode (%s)', (path, line, target) => {
      expect(upwardImports(withLine(path, line))).toContain(`${path} imports ${target}`);
    });

    it.each([
      ['src/backend/core.ts', "import { serve } from '../server/server.js';"],
      ['src/backend/ts-core.ts', "import { createSocket } from 'node:dgram';"],
      ['src/layout.ts', "import { readFileSync } from 'node:fs';"],
      ['src/errors.ts', "import type { Etcd3 } from 'etcd3';"],
    ])("the generator's closure reaching it through %s (%s)", (path, line) => {
      expect(generatorLeaks(withLine(path, line)).filter((chain) => chain.includes(path))).not.toEqual([]);
    });

    it.each([
      ['src/fleet/claim.ts', "import type { Etcd3 } from 'etcd3';"],
      ['src/fleet/status.ts', "const { Etcd3 } = load('etcd3');"],
      ['src/cli/fleet-status.ts', "const etcd3 = await import('etcd3');"],
    ])('%s importing etcd3 (%s)', (path, line) => {
      expect(etcd3Importers(withLine(path, line))).toContain(`${path} imports etcd3`);
    });

    it.each([
      ['src/fleet/held-claim.ts', 'const t = setTimeout(() => undefined, 10);', 'setTimeout'],
      ['src/fleet/claim.ts', 'const started = performance.now();', 'performance'],
      ['src/fleet/member.ts', 'const at = Date.now();', 'Date.now'],
      ['src/fleet/pick-node-id.ts', 'const r = Math.random();', 'Math.random'],
      ['src/fleet/backoff.ts', "import { setTimeout as sleep } from 'node:timers/promises';", "'node:timers/promises'"],
      ['src/fleet/instance-info.ts', 'const when = new Date();', 'new Date()'],
      ['src/fleet/status.ts', "const t = Date['now']();", "Date['now']"],
      ['src/fleet/claim-attempt.ts', 'const t = process.hrtime.bigint();', 'process.hrtime'],
      ['src/fleet/backoff.ts', 'const s = AbortSignal.timeout(10);', 'AbortSignal.timeout'],
      ['src/fleet/far-ahead.ts', 'const later = setTimeout;', 'setTimeout'],
    ])('%s reading real time (%s)', (path, line, found) => {
      expect(fleetRealTime(withLine(path, line))).toContain(`${path}: ${found}`);
      // Said in a comment, it is not a use.
      expect(fleetRealTime(withLine(path, `// ${line}`))).toEqual([]);
    });

    it('a comment naming a module is not an import', () => {
      const commented = withLine('src/server/server.ts', "// see '../fleet/member.js' for fleet mode; import('../fleet/etcd.js')\n/* from '../fleet/claim.js' */");
      expect(upwardImports(commented)).toEqual(upwardImports(sources));
    });
  });
});
