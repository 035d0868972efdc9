import { execa } from 'execa';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { isShellName, quoteArg, quoteCommand } from './shell-quote.js';

/** Characters a shell treats specially, weighted up so that every run meets several of them. */
const nasty = fc.constantFrom("'", '"', '\\', '$', '`', '\n', '\r', '\t', ' ', '*', '?', '[', '~', '!', '#', '&', ';', '|', '<', '>', '(', ')', '{', '}', '=', '%', '-', '\u00e9', '\u{1f431}');
const word = fc.string({ unit: fc.oneof(nasty, fc.string({ unit: 'binary', minLength: 1, maxLength: 1 })), maxLength: 24 }).filter((s) => !s.includes('\0'));

/**
 * What the shell hands to `printf %s\0` for each word of each quoted command
 * line; several lines run in one shell to keep the test fast.
 */
async function roundTrip(shell: string, lines: readonly (readonly string[])[]): Promise<string[]> {
  const script = lines.map((words) => `printf %s\\\\0 ${quoteCommand(words)}`).join('\n');
  const r = await execa(shell, ['-c', script], { encoding: 'buffer', stripFinalNewline: false });
  const out = Buffer.from(r.stdout).toString('utf8');
  expect(out.endsWith('\0')).toBe(true);
  return out.slice(0, -1).split('\0');
}

describe('quoteArg', () => {
  it('leaves plain words readable and quotes everything else', () => {
    expect(quoteCommand(['ls', '-l', '/srv/app'])).toBe('ls -l /srv/app');
    expect(quoteArg('')).toBe("''");
    expect(quoteArg("it's")).toBe(`'it'\\''s'`);
    expect(quoteArg('A=B')).toBe("'A=B'");
    expect(quoteArg('$HOME')).toBe("'$HOME'");
    expect(() => quoteArg('a\0b')).toThrow(/NUL/);
    expect(() => quoteCommand([])).toThrow(RangeError);
  });

  it('checks variable names', () => {
    expect(isShellName('LC_ALL')).toBe(true);
    expect(isShellName('1X')).toBe(false);
    expect(isShellName('A-B')).toBe(false);
  });

  for (const shell of ['sh', 'bash']) {
    it(`round-trips arbitrary words through ${shell} -c exactly`, async () => {
      await fc.assert(
        fc.asyncProperty(fc.array(fc.array(word, { minLength: 1, maxLength: 6 }), { minLength: 1, maxLength: 25 }), async (lines) => {
          expect(await roundTrip(shell, lines)).toEqual(lines.flat());
        }),
        { numRuns: 40 },
      );
    });
  }
});
