// The import graph of src/, read from the sources: which module imports which (static
// imports, re-exports, `import type` and dynamic `import('…')` alike — a type import is a
// dependency too), for the house-rules test.

import { readFileSync, readdirSync } from 'node:fs';
import { dirname, join, posix, relative } from 'node:path';

/** Source text by path relative to the project root ("src/server/server.ts"). */
export type Sources = Map<string, string>;

export function readSources(root: string, dir = 'src'): Sources {
  const sources: Sources = new Map();
  const walk = (rel: string) => {
    for (const entry of readdirSync(join(root, rel), { withFileTypes: true })) {
      const path = posix.join(rel, entry.name);
      if (entry.isDirectory()) walk(path);
      else if (entry.name.endsWith('.ts')) sources.set(path, readFileSync(join(root, path), 'utf8'));
    }
  };
  walk(dir);
  return sources;
}

// `import … from '…'`, `export … from '…'`, `import '…'`, `import('…')`, `load('…')` (the
// lazy require of etcd3). Comments are stripped first, so a path named in prose is not one.
const SPECIFIER = /(?:\bfrom\s*|\bimport\s*\(?\s*|\bload\(\s*)['"]([^'"]+)['"]/g;

/** The modules a file imports: project files as paths ("src/node/node.ts"), packages as named. */
export function importsOf(path: string, text: string): string[] {
  const code = withoutComments(text);
  const found: string[] = [];
  for (const match of code.matchAll(SPECIFIER)) {
    const spec = match[1]!;
    found.push(spec.startsWith('.') ? posix.normalize(posix.join(dirname(path), spec)).replace(/\.js$/, '.ts') : spec);
  }
  return found;
}

/** The code of a file without its comments: prose naming a module or a call is not code. */
export function withoutComments(text: string): string {
  return text.replace(/\/\*[\s\S]*?\*\//g, '').replace(/(^|[^:'"`])\/\/.*$/gm, '$1');
}

export interface ImportEdge {
  from: string;
  to: string;
}

export function edgesOf(sources: Sources): ImportEdge[] {
  return [...sources].flatMap(([from, text]) => importsOf(from, text).map((to) => ({ from, to })));
}

/** Every module reachable from `start`, with the chain of imports that reaches it. */
export function closureOf(sources: Sources, start: string): Map<string, string[]> {
  const chains = new Map<string, string[]>([[start, [start]]]);
  const queue = [start];
  while (queue.length > 0) {
    const from = queue.shift()!;
    const text = sources.get(from);
    if (text === undefined) continue;
    for (const to of importsOf(from, text)) {
      if (chains.has(to)) continue;
      chains.set(to, [...chains.get(from)!, to]);
      queue.push(to);
    }
  }
  return chains;
}

export function relativeTo(root: string, path: string): string {
  return relative(root, path).split('\\').join('/');
}
