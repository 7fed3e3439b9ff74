// Longest test files first. vitest orders files by the previous run's durations when its
// cache has them, and by file size when it has none — as on every fresh clone, CI included,
// where a short file with a long run (the fleet simulator's band) could start last and
// finish a minute after everything else. Starting the longest first keeps the last ones short.

import { BaseSequencer, type TestSpecification } from 'vitest/node';
import { FILE_SECONDS } from './file-seconds.js';

/** Files not in the table (new ones) are taken as a few seconds long. */
const UNKNOWN_SECONDS = 5;

export class LongestFirstSequencer extends BaseSequencer {
  override async sort(files: TestSpecification[]): Promise<TestSpecification[]> {
    const root = this.ctx.config.root;
    const seconds = (file: TestSpecification) => FILE_SECONDS[file.moduleId.slice(root.length + 1)] ?? UNKNOWN_SECONDS;
    return [...files].sort((a, b) => seconds(b) - seconds(a));
  }
}
