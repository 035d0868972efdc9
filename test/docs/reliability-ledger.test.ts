/**
 * docs/RELIABILITY.md is a ledger: each row names the automated test that proves
 * its promise. This keeps the ledger honest: every named test file exists and
 * still holds a test with that title, and no row is without a test.
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const LEDGER = path.join(ROOT, 'docs/RELIABILITY.md');

interface Row {
  readonly line: number;
  readonly id: string;
  readonly file: string;
  readonly title: string;
}

/** Rows of the ledger's table: `| id | fault | promise | \`file\` › title | result |`. */
export function ledgerRows(text: string): Row[] {
  const rows: Row[] = [];
  text.split('\n').forEach((raw, i) => {
    const cells = raw.split('|').map((c) => c.trim());
    if (cells.length < 6 || !/^\d+$/.test(cells[1]!)) return;
    const test = /^`([^`]+)`\s*›\s*(.+)$/.exec(cells[4]!);
    rows.push({ line: i + 1, id: cells[1]!, file: test?.[1] ?? '', title: test?.[2]?.trim() ?? '' });
  });
  return rows;
}

describe('docs/RELIABILITY.md', () => {
  const rows = ledgerRows(readFileSync(LEDGER, 'utf8'));

  it('has at least 40 rows, numbered once each', () => {
    expect(rows.length).toBeGreaterThanOrEqual(40);
    expect(new Set(rows.map((r) => r.id)).size).toBe(rows.length);
  });

  it('names, for every row, a test file that exists and a test title it holds', () => {
    const broken = rows.flatMap((r) => {
      if (r.file === '' || r.title === '') return [`line ${r.line}: no \`file\` › title`];
      const file = path.join(ROOT, r.file);
      if (!existsSync(file)) return [`line ${r.line}: ${r.file} does not exist`];
      return readFileSync(file, 'utf8').includes(r.title) ? [] : [`line ${r.line}: ${r.file} has no test "${r.title}"`];
    });
    expect(broken).toEqual([]);
  });

  it('reads a row and refuses one without a test', () => {
    const sample = '| 1 | a | b | `src/x.test.ts` › does it | pass |\n| 2 | a | b | none | pass |\n';
    expect(ledgerRows(sample)).toEqual([
      { line: 1, id: '1', file: 'src/x.test.ts', title: 'does it' },
      { line: 2, id: '2', file: '', title: '' },
    ]);
  });
});
