/**
 * README.md's "Prerequisites" table names, for each program Capstan runs, the
 * Debian package that provides it: the same map the error messages use
 * (src/util/prerequisites.ts). This keeps the two from drifting apart.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { DEBIAN_PACKAGES } from '../../src/util/prerequisites.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

function tableRows(): { programs: string[]; packages: string[] }[] {
  const readme = readFileSync(path.join(ROOT, 'README.md'), 'utf8');
  const section = readme.slice(readme.indexOf('### Prerequisites'));
  const table = section.slice(0, section.indexOf('\n\n', section.indexOf('| Feature')));
  return table
    .split('\n')
    .filter((l) => l.startsWith('| ') && !l.startsWith('| Feature'))
    .map((l) => {
      const cells = l.split('|').map((c) => c.trim());
      const codes = (cell: string): string[] => [...cell.matchAll(/`([^`]+)`/g)].map((m) => m[1]!);
      return { programs: codes(cells[2]!), packages: codes(cells[4]!) };
    });
}

describe('README Prerequisites table', () => {
  it('has rows, and every program in it maps to a package listed in its row, as the error messages say', () => {
    const rows = tableRows();
    expect(rows.length).toBeGreaterThanOrEqual(8);
    for (const row of rows) {
      for (const program of row.programs) {
        expect(DEBIAN_PACKAGES[program], `${program} has no package in src/util/prerequisites.ts`).toBeDefined();
        expect(row.packages, `README row of ${program}`).toContain(DEBIAN_PACKAGES[program]);
      }
    }
  });
});
