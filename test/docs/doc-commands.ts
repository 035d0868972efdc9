/**
 * The commands of a documentation page's fenced ```sh blocks, with what the page
 * says about each: a `# exits N` comment line after a command is its exit code
 * (0 when none), and each `# → TEXT` comment line is text its output holds.
 */

export interface DocCommand {
  /** The shell text: one line, or several joined by `\` or a here-document. */
  readonly text: string;
  /** 1-based line of the page where it starts. */
  readonly line: number;
  exitCode: number;
  readonly outputs: string[];
}

export function docCommands(markdown: string): DocCommand[] {
  const lines = markdown.split('\n');
  const commands: DocCommand[] = [];
  let inBlock = false;
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    if (!inBlock) {
      inBlock = line.trim() === '```sh';
      continue;
    }
    if (line.trim() === '```') {
      inBlock = false;
      continue;
    }
    const trimmed = line.trim();
    if (trimmed === '') continue;
    if (trimmed.startsWith('#')) {
      const last = commands.at(-1);
      const output = /^#\s*→\s*(.+)$/.exec(trimmed);
      const exit = /^#\s*exits\s+(\d+)\b/.exec(trimmed);
      if ((output || exit) && !last) throw new Error(`line ${i + 1}: "${trimmed}" follows no command`);
      if (output) last!.outputs.push(output[1]!.trim());
      if (exit) last!.exitCode = Number(exit[1]);
      continue;
    }
    const start = i;
    const text = [line];
    while (text.at(-1)!.endsWith('\\') && i + 1 < lines.length) text.push(lines[++i]!);
    const heredoc = /<<-?\s*'?"?(\w+)'?"?/.exec(line);
    if (heredoc) {
      while (i + 1 < lines.length && lines[i]!.trim() !== heredoc[1]) text.push(lines[++i]!);
      if (lines[i]!.trim() !== heredoc[1]) throw new Error(`line ${start + 1}: the here-document ${heredoc[1]} never ends`);
    }
    commands.push({ text: text.join('\n'), line: start + 1, exitCode: 0, outputs: [] });
  }
  if (inBlock) throw new Error('a ```sh block never ends');
  return commands;
}

/**
 * A bash script that runs the commands in order in one shell (so `cd`, variables
 * and background jobs carry over), writes each one's output to OUT/N.out and its
 * exit code to OUT/N.rc, and stops at the first exit code the page did not say.
 * On exit it stops the background jobs the page left running.
 */
export function docScript(commands: readonly DocCommand[], outDir: string): string {
  const q = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;
  const parts = ['trap \'kill $(jobs -p) 2>/dev/null; wait\' EXIT'];
  commands.forEach((c, n) => {
    const out = q(`${outDir}/${n}`);
    parts.push(
      `{\n${c.text}\n} > ${out}.out 2>&1 < /dev/null`,
      `rc=$?; echo "$rc" > ${out}.rc`,
      `if [ "$rc" != ${c.exitCode} ]; then echo "command ${n} (line ${c.line}) exited $rc, not ${c.exitCode}" >&2; exit 99; fi`,
    );
  });
  return parts.join('\n') + '\n';
}
