/**
 * One YAML syntax error per broken document, with a hint a newcomer can act on.
 *
 * The `yaml` package reports every consequence of one mistake (a tab, a line
 * indented one space too far, an unclosed quote) as its own error; after the
 * first, the rest are noise. `describeSyntaxError` turns the first error of a
 * document into a diagnostic: the position of the mistake (for an unclosed quote,
 * where the quote opened, not the end of the file it swallowed) and a hint.
 */
import { CST, Parser, type YAMLError } from 'yaml';
import { error, type Diagnostic, type SourcePosition } from '../diag/diagnostic.js';

/** The first error of the document (by position), described; undefined when there is none. */
export function describeSyntaxError(
  errors: readonly YAMLError[],
  text: string,
  at: (offset: number) => SourcePosition,
): Diagnostic | undefined {
  const first = [...errors].sort((a, b) => a.pos[0] - b.pos[0])[0];
  if (!first) return undefined;
  const quote = unclosedQuote(first);
  const offset = quote ? (openingQuoteOffset(text, first.pos[0], quote) ?? first.pos[0]) : first.pos[0];
  return error(`YAML syntax error: ${first.message}`, { source: at(offset), detail: hintFor(first, quote, lineAt(text, offset)) });
}

function unclosedQuote(e: YAMLError): '"' | "'" | undefined {
  if (e.code !== 'MISSING_CHAR') return undefined;
  const m = /closing (["'])quote/.exec(e.message);
  return m ? (m[1] as '"' | "'") : undefined;
}

function hintFor(e: YAMLError, quote: string | undefined, line: string): string {
  switch (e.code) {
    case 'TAB_AS_INDENT':
      return 'YAML indents with spaces only: replace the tab with spaces';
    case 'MISSING_CHAR':
      return quote
        ? `the ${quote === '"' ? 'double' : 'single'} quote opened here is never closed: add the closing ${quote} on this line`
        : 'a flow collection ({...} or [...]) is not closed: add the closing bracket';
    case 'BLOCK_AS_IMPLICIT_KEY':
    case 'MULTILINE_IMPLICIT_KEY':
      return /:\s.*:(\s|$)/.test(line)
        ? 'a value containing ": " must be quoted, e.g. key: "a: b"'
        : 'check the indentation: a line below this one is indented further than its siblings; keys of one map start in the same column';
    case 'BAD_INDENT':
      return 'check the indentation: keys of one map start in the same column, and nested entries are indented further with spaces';
    case 'DUPLICATE_KEY':
      return 'a key may appear only once in a map: remove or rename one of them';
    case 'BAD_DQ_ESCAPE':
      return 'inside double quotes a backslash starts an escape: write \\\\ for a backslash, or use single quotes';
    default:
      return 'see https://yaml.org/spec/1.2.2/ for the syntax';
  }
}

/** Where the quoted scalar that runs to `end` opened. */
function openingQuoteOffset(text: string, end: number, quote: string): number | undefined {
  const type = quote === '"' ? 'double-quoted-scalar' : 'single-quoted-scalar';
  let found: number | undefined;
  for (const token of new Parser().parse(text)) {
    if (token.type !== 'document') continue;
    CST.visit(token, (item) => {
      for (const t of [item.key, item.value]) {
        if (t && t.type === type && t.offset < end && end <= t.offset + t.source.length + 1) found = t.offset;
      }
    });
    if (found !== undefined) break;
  }
  return found;
}

function lineAt(text: string, offset: number): string {
  const start = text.lastIndexOf('\n', offset - 1) + 1;
  const end = text.indexOf('\n', offset);
  return text.slice(start, end === -1 ? undefined : end);
}
