// The README's command-line reference lists what `--help` lists: every flag of every command
// in its synopsis, every environment variable in the paragraph beneath it. Read from the
// built command's own help, so a new flag without a line in the README fails here.

import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { runCli } from './support/child.js';

const ROOT = fileURLToPath(new URL('../', import.meta.url));
const readme = readFileSync(`${ROOT}README.md`, 'utf8');
const reference = readme.slice(readme.indexOf('\n## Command line\n'));
/** The synopsis: the first code block of the section. */
const synopsis = /```\n([\s\S]*?)```/.exec(reference)![1]!;
/** The environment variables: the paragraph after the synopsis. */
const environment = reference.slice(reference.indexOf('```', reference.indexOf('```') + 3)).split('\n\n')[1]!;

/** A command's lines of the synopsis: its own, and the indented ones that continue it. */
function synopsisOf(command: string): string {
  const lines = synopsis.split('\n');
  const start = lines.findIndex((l) => l.startsWith(`hailstone ${command} `) || l === `hailstone ${command}`);
  if (start < 0) return '';
  let end = start + 1;
  while (end < lines.length && /^\s/.test(lines[end]!)) end++;
  return lines.slice(start, end).join('\n');
}

describe("the README's command-line reference", () => {
  it.each(['serve', 'get', 'fleet status', 'inspect', 'keygen'])('lists every flag and variable `hailstone %s --help` lists', async (command) => {
    const help = await runCli([...command.split(' '), '--help']);
    expect(help.code).toBe(0);
    // The options it defines (a line that starts with one), not flags its prose mentions.
    const flags = [...help.stdout.matchAll(/^ {2}(?:-\w, )?(--[a-z][a-z-]+)/gm)].map((m) => m[1]!).filter((f) => f !== '--help');
    const variables = [...new Set(help.stdout.match(/HAILSTONE_[A-Z_]+/g) ?? [])];
    expect(flags.length + variables.length).toBeGreaterThan(0);
    const listed = synopsisOf(command);
    expect(flags.filter((f) => !new RegExp(`${f}(?![\\w-])`).test(listed)), `flags of ${command} missing from the synopsis`).toEqual([]);
    expect(variables.filter((v) => !new RegExp(`\`${v}(=1)?\``).test(environment)), `variables of ${command} missing from the paragraph under the synopsis`).toEqual([]);
  });
});
