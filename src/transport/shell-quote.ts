/**
 * POSIX shell quoting for commands sent over SSH. An SSH server runs the command
 * string through the user's login shell, so an argument array has to become one
 * string that shell splits back into exactly the same words.
 *
 * Every word is wrapped in single quotes, inside which a POSIX shell gives no
 * character a special meaning; a single quote itself is written as `'\''` (close,
 * an escaped quote, reopen). NUL cannot be carried by any shell word and is
 * refused.
 */

/** One word, quoted so that a POSIX shell reads it back byte for byte. */
export function quoteArg(word: string): string {
  if (word.includes('\0')) throw new RangeError('a shell argument cannot contain a NUL character');
  // Plain words stay readable in logs and `ps`; everything else is single-quoted (`=` too:
  // `A=B` first on a line would be an assignment, not a program).
  if (/^[A-Za-z0-9_@%+:,./-]+$/.test(word)) return word;
  return `'${word.replaceAll("'", `'\\''`)}'`;
}

/** An argument array as one command line for `sh -c` (or an SSH server's login shell). */
export function quoteCommand(argv: readonly string[]): string {
  if (argv.length === 0) throw new RangeError('a command needs at least a program name');
  return argv.map(quoteArg).join(' ');
}

/** A valid name for a shell variable assignment (`NAME=value`). */
export function isShellName(name: string): boolean {
  return /^[A-Za-z_][A-Za-z0-9_]*$/.test(name);
}
