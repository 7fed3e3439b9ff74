// The README's API section is the library's manual: every name the package exports, and
// every member of the interfaces a user calls or configures, is in it. Read from the
// TypeScript declarations themselves, so a new export or option without documentation
// fails here.

import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('../', import.meta.url));
const readme = readFileSync(`${ROOT}README.md`, 'utf8');
const api = readme.slice(readme.indexOf('\n## API\n'), readme.indexOf('\n## Command line\n'));
const ENTRIES = ['index', 'entry/generator', 'entry/client', 'entry/server'];

const program = ts.createProgram(
  ENTRIES.map((e) => `${ROOT}src/${e}.ts`),
  { module: ts.ModuleKind.NodeNext, moduleResolution: ts.ModuleResolutionKind.NodeNext, target: ts.ScriptTarget.ES2022, strict: true, noEmit: true, skipLibCheck: true },
);
const checker = program.getTypeChecker();

function exportsOf(entry: string): ts.Symbol[] {
  const file = program.getSourceFile(`${ROOT}src/${entry}.ts`)!;
  return checker.getExportsOfModule(checker.getSymbolAtLocation(file)!);
}

/** Property names of an exported type (every member of a union). */
function membersOf(name: string): string[] {
  const symbol = exportsOf('index').find((s) => s.name === name);
  if (symbol === undefined) throw new Error(`${name} is not exported`);
  const type = checker.getDeclaredTypeOfSymbol(checker.getAliasedSymbol(symbol));
  const parts = type.isUnion() ? type.types : [type];
  return [...new Set(parts.flatMap((t) => checker.getPropertiesOfType(t).map((p) => p.name)))];
}

/** Documented: the name opens a code span somewhere in the API section. */
function undocumented(names: string[]): string[] {
  return names.filter((name) => !new RegExp(`\`${name}\\b`).test(api)).sort();
}

describe("the README's API section", () => {
  it.each(ENTRIES)('names every export of %s', (entry) => {
    const names = exportsOf(entry).map((s) => s.name);
    expect(names.length).toBeGreaterThan(5);
    expect(undocumented(names)).toEqual([]);
  });

  it.each(['Generator', 'GeneratorOptions', 'HailstoneNode', 'NodeOptions', 'NodeStatus', 'Client', 'ClientOptions', 'ClientStats', 'Server', 'ServeOptions', 'ServerStats', 'FleetOptions'])('names every member of %s', (name) => {
    expect(undocumented(membersOf(name))).toEqual([]);
  });

  it('the entry points are the ones package.json exports', () => {
    const pkg = JSON.parse(readFileSync(`${ROOT}package.json`, 'utf8')) as { exports: Record<string, unknown> };
    expect(Object.keys(pkg.exports).sort()).toEqual(['.', './client', './generator', './package.json', './server']);
    for (const sub of ['generator', 'client', 'server']) expect(readme).toContain(`\`hailstone/${sub}\``);
  });
});
