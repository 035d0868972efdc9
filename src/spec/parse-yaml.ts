/**
 * YAML parsing with source positions, bounded against hostile input: a file over
 * the size limit, too many documents, or an alias bomb ("billion laughs") is an
 * error diagnostic, never a hang or an out-of-memory crash.
 *
 * Files in a plain subset of YAML take a fast path (at the end of this file) that
 * agrees with the `yaml` package on every value and position; everything else,
 * errors included, goes through `yaml` (parseAllDocuments' Parser and Composer
 * with a LineCounter; positions from `doc.getIn(path, true)` node ranges).
 */
import { Composer, isMap, isNode, isPair, isScalar, isSeq, LineCounter, Parser, type Document, type Node } from 'yaml';
import { error, warning, type Diagnostic, type SourcePosition } from '../diag/diagnostic.js';
import type { PositionLookup } from './resource.js';
import { describeSyntaxError } from './yaml-syntax-error.js';

export const MAX_FILE_BYTES = 16 * 1024 * 1024;
export const MAX_DOCUMENTS = 100_000;
/** Alias expansions allowed per document: enough for `<<: *defaults` style reuse, far below a bomb. */
export const MAX_ALIAS_COUNT = 100;

/** One non-empty YAML document whose top level is a map. */
export interface ParsedDocument {
  /** Path relative to the repository. */
  readonly file: string;
  /** 0-based index of the document in its file, empty documents included. */
  readonly index: number;
  readonly value: Readonly<Record<string, unknown>>;
  /** Where the document's content starts. */
  readonly source: SourcePosition;
  /** Position of the value at a path, or of its nearest existing ancestor. */
  readonly positionOf: PositionLookup;
  /** Position of the key of the last path segment (for "unknown key" errors), else `positionOf`. */
  readonly keyPositionOf: PositionLookup;
}

/** What could be read of a document YAML rejected: enough to keep references to it from cascading into errors. */
export interface BrokenDocument {
  readonly kind: string;
  readonly name: string;
  readonly source: SourcePosition;
}

export interface ParseYamlOptions {
  /** Documents this file may still hold before the repository-wide limit is reached. */
  readonly maxDocuments?: number;
  /** The repository-wide limit, for the message; defaults to `maxDocuments`. */
  readonly documentLimit?: number;
  readonly maxAliasCount?: number;
  /** Largest text accepted, in UTF-8 bytes (default 16 MiB). */
  readonly maxBytes?: number;
  /** Try the fast path first (default). Tests turn it off to compare. */
  readonly fastPath?: boolean;
}

export interface ParseYamlResult {
  readonly documents: ParsedDocument[];
  readonly broken: BrokenDocument[];
  readonly diagnostics: Diagnostic[];
  /** Documents composed, empty ones included: what counts against the limit. */
  readonly count: number;
  /** True when the document limit stopped parsing. */
  readonly limitReached: boolean;
  /** True when the fast path read the file (see below). */
  readonly fast: boolean;
}

/** Parses every document of one file. Never throws: every problem is a diagnostic. */
export function parseYamlDocuments(text: string, file: string, options: ParseYamlOptions = {}): ParseYamlResult {
  const maxDocuments = options.maxDocuments ?? MAX_DOCUMENTS;
  const maxAliasCount = options.maxAliasCount ?? MAX_ALIAS_COUNT;
  const documents: ParsedDocument[] = [];
  const broken: BrokenDocument[] = [];
  const diagnostics: Diagnostic[] = [];

  const maxBytes = options.maxBytes ?? MAX_FILE_BYTES;
  if (text.length > maxBytes || Buffer.byteLength(text) > maxBytes) {
    diagnostics.push(error(`file is over the limit of ${maxBytes} bytes`, { source: { file, line: 1, col: 1 } }));
    return { documents, broken, diagnostics, count: 0, limitReached: false, fast: false };
  }

  const fast = options.fastPath === false ? undefined : fastParse(text);
  if (fast && fast.count <= maxDocuments) {
    const at = lineLookup(file, fast.lineStarts);
    for (const d of fast.documents) documents.push({ file, index: d.index, value: d.value, source: at(d.start), ...fastPositions(d, at) });
    return { documents, broken, diagnostics, count: fast.count, limitReached: false, fast: true };
  }

  const lines = new LineCounter();
  const at = (offset: number): SourcePosition => ({ file, ...lines.linePos(offset) });
  let count = 0;
  let limitReached = false;
  try {
    const parser = new Parser(lines.addNewLine);
    // `merge` enables `<<: *defaults`; logLevel keeps yaml from writing warnings to the console.
    const composer = new Composer({ merge: true, uniqueKeys: true, logLevel: 'error' });
    for (const doc of composer.compose(parser.parse(text))) {
      const index = count++;
      if (count > maxDocuments) {
        diagnostics.push(
          error(`too many YAML documents: a stack may hold at most ${options.documentLimit ?? maxDocuments}`, {
            source: at(doc.range[0]),
            detail: 'split the stack or remove generated documents',
          }),
        );
        limitReached = true;
        break;
      }
      for (const w of doc.warnings) diagnostics.push(warning(w.message, { source: at(w.pos[0]) }));
      if (doc.errors.length > 0) {
        // Only the first: the others are usually consequences of the same mistake.
        diagnostics.push(describeSyntaxError(doc.errors, text, at)!);
        const salvage = salvageIdentity(doc, at(doc.contents?.range[0] ?? doc.range[0]));
        if (salvage) broken.push(salvage);
        continue;
      }
      const contents = doc.contents;
      if (contents === null || (isScalar(contents) && contents.value === null && contents.source === '')) continue;
      const source = at(contents.range[0]);
      if (!isMap(contents)) {
        const found = isSeq(contents) ? 'a list' : isScalar(contents) ? `the scalar ${JSON.stringify(String(contents.source ?? contents.value))}` : 'something else';
        diagnostics.push(error(`a document must be a map with kind, name and spec; found ${found}`, { source }));
        continue;
      }
      let value: unknown;
      try {
        value = doc.toJS({ maxAliasCount });
      } catch (e) {
        diagnostics.push(error(toJsFailure(e, maxAliasCount), { source }));
        continue;
      }
      documents.push({
        file,
        index,
        value: value as Record<string, unknown>,
        source,
        positionOf: (path) => positionOf(doc, path, at, source),
        keyPositionOf: (path) => keyPositionOf(doc, path, at, source),
      });
    }
  } catch (e) {
    // The composer recurses on nesting; absurdly deep input ends here rather than crashing the load.
    diagnostics.push(error(`could not parse YAML: ${e instanceof Error ? e.message : String(e)}`, { source: { file, line: 1, col: 1 } }));
  }
  return { documents, broken, diagnostics, count, limitReached, fast: false };
}

function toJsFailure(e: unknown, maxAliasCount: number): string {
  const message = e instanceof Error ? e.message : String(e);
  if (/excessive alias count/i.test(message)) {
    return `too many alias expansions (more than ${maxAliasCount}): refusing what looks like an alias bomb`;
  }
  return `could not read YAML document: ${message}`;
}

function salvageIdentity(doc: Document.Parsed, source: SourcePosition): BrokenDocument | undefined {
  if (!isMap(doc.contents)) return undefined;
  const kind = doc.contents.get('kind');
  const name = doc.contents.get('name');
  return typeof kind === 'string' && typeof name === 'string' ? { kind, name, source } : undefined;
}

function nodeAt(doc: Document.Parsed, path: readonly (string | number)[]): unknown {
  return path.length === 0 ? doc.contents : doc.getIn(path, true);
}

function positionOf(
  doc: Document.Parsed,
  path: readonly (string | number)[],
  at: (offset: number) => SourcePosition,
  fallback: SourcePosition,
): SourcePosition {
  for (let n = path.length; n >= 0; n--) {
    let node: unknown;
    try {
      node = nodeAt(doc, path.slice(0, n));
    } catch {
      continue;
    }
    if (isNode(node) && node.range) return at(node.range[0]);
  }
  return fallback;
}

function keyPositionOf(
  doc: Document.Parsed,
  path: readonly (string | number)[],
  at: (offset: number) => SourcePosition,
  fallback: SourcePosition,
): SourcePosition {
  const last = path[path.length - 1];
  if (last !== undefined) {
    let parent: unknown;
    try {
      parent = nodeAt(doc, path.slice(0, -1));
    } catch {
      parent = undefined;
    }
    if (isMap(parent)) {
      for (const pair of parent.items) {
        if (!isPair(pair)) continue;
        const key = pair.key as Node | null;
        if (isScalar(key) && String(key.value) === String(last) && key.range) return at(key.range[0]);
      }
    }
  }
  return positionOf(doc, path, at, fallback);
}

// ---------------------------------------------------------------------------
// Fast path.
//
// The `yaml` package builds a full syntax tree and costs most of a large load.
// Most stack documents use a small, plain subset of YAML: block maps and
// sequences indented with spaces, plain and quoted one-line scalars, one-line flow
// collections of scalars, `|` block scalars. `fastParse` reads exactly that subset
// and gives up (returns undefined) on anything else in the file, which then goes
// through `yaml` as before. It must agree with `yaml` on every value and position
// it does accept: parse-yaml.test.ts checks that differentially.
// ---------------------------------------------------------------------------

interface FastDocument {
  readonly index: number;
  readonly value: Record<string, unknown>;
  readonly start: number;
  /** path key (segments joined by SEP) -> offset of the value node */
  readonly values: Map<string, number>;
  /** path key -> offset of the map key naming it */
  readonly keys: Map<string, number>;
}

interface FastResult {
  readonly documents: FastDocument[];
  readonly count: number;
  readonly lineStarts: number[];
}

interface Line {
  /** Offset of the first character of the line in the file. */
  readonly offset: number;
  /** Leading spaces. */
  readonly indent: number;
  /** The line after its indentation. */
  readonly content: string;
}

const SEP = '\u0000';
const GIVE_UP: unique symbol = Symbol('fast path gives up');
function giveUp(): never {
  throw GIVE_UP;
}

// Control characters, tabs and CR (line ends and indentation the fast path does not model),
// a BOM, and any line starting with a directive or a document end marker.
const OUTSIDE_SUBSET = /[\u0000-\u0009\u000b-\u001f\u007f\ufeff]|^(?:%|\.\.\.)/m;
const DOCUMENT_START = /^---[ ]*$/;
const KEY = /^([A-Za-z_][A-Za-z0-9_./-]*):(?: +|$)/;
const RESERVED_KEYS = new Set(['true', 'True', 'TRUE', 'false', 'False', 'FALSE', 'null', 'Null', 'NULL', '__proto__']);
// yaml's core schema: a plain scalar matching one of these is not a string.
const NULL = /^(?:~|[Nn]ull|NULL)$/;
const TRUE = /^(?:[Tt]rue|TRUE)$/;
const FALSE = /^(?:[Ff]alse|FALSE)$/;
const INT = /^[-+]?[0-9]+$/;
const FLOAT = /^[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)[eE][-+]?[0-9]+$|^[-+]?(?:\.[0-9]+|[0-9]+\.[0-9]*)$/;
/** Octal, hexadecimal, infinities and NaN: numbers the fast path leaves to yaml. */
const OTHER_NUMBER = /^(?:0o[0-7]+|0x[0-9a-fA-F]+|[-+]?\.(?:inf|Inf|INF)|\.nan|\.NaN|\.NAN)$/;
/** Characters a fast-path plain scalar may not start with. */
const PLAIN_START_EXCLUDED = new Set(['?', ':', ',', '[', ']', '{', '}', '#', '&', '*', '!', '|', '>', "'", '"', '%', '@', '`', '-']);

function fastParse(text: string): FastResult | undefined {
  if (OUTSIDE_SUBSET.test(text)) return undefined;
  // A block scalar on the last line of a file without a final newline would need yaml's rules for it.
  const endsWithNewline = text.endsWith('\n');
  const raw = text.split('\n');
  if (endsWithNewline) raw.pop();
  const lineStarts: number[] = [];
  const segments: Line[][] = [[]];
  let sawSeparator = false;
  let offset = 0;
  for (const line of raw) {
    lineStarts.push(offset);
    if (line.startsWith('---')) {
      if (!DOCUMENT_START.test(line)) return undefined;
      segments.push([]);
      sawSeparator = true;
    } else {
      let indent = 0;
      while (line.charCodeAt(indent) === 32) indent++;
      segments[segments.length - 1]!.push({ offset, indent, content: line.slice(indent) });
    }
    offset += line.length + 1;
  }

  const documents: FastDocument[] = [];
  let count = 0;
  try {
    segments.forEach((lines, s) => {
      const hasContent = lines.some(isSignificant);
      // Text before the first `---` is a document only when it has content.
      if (s === 0 && sawSeparator && !hasContent) return;
      if (s === 0 && !sawSeparator && !hasContent) return;
      const index = count++;
      if (!hasContent) return;
      const doc = new FastDocumentParser(lines, endsWithNewline || s < segments.length - 1).parse();
      documents.push({ index, ...doc });
    });
  } catch (e) {
    // RangeError: nesting deep enough to exhaust the stack; yaml reports it properly.
    if (e === GIVE_UP || e instanceof RangeError) return undefined;
    throw e;
  }
  return { documents, count, lineStarts };
}

function isSignificant(line: Line): boolean {
  return line.content !== '' && !line.content.startsWith('#') && line.content.trim() !== '';
}

function isSequenceItem(content: string): boolean {
  return content === '-' || content.startsWith('- ');
}

class FastDocumentParser {
  private i = 0;
  private readonly values = new Map<string, number>();
  private readonly keys = new Map<string, number>();

  constructor(
    private readonly lines: Line[],
    private readonly lastLineEnded: boolean,
  ) {}

  parse(): { value: Record<string, unknown>; start: number; values: Map<string, number>; keys: Map<string, number> } {
    this.skipInsignificant();
    const first = this.lines[this.i]!;
    if (first.indent !== 0 || isSequenceItem(first.content)) giveUp();
    const value = this.parseMap(0, '');
    this.skipInsignificant();
    if (this.i < this.lines.length) giveUp();
    return { value, start: first.offset, values: this.values, keys: this.keys };
  }

  private skipInsignificant(): void {
    while (this.i < this.lines.length && !isSignificant(this.lines[this.i]!)) this.i++;
  }

  /** Index of the next significant line, without consuming anything. */
  private peekSignificant(): Line | undefined {
    let j = this.i;
    while (j < this.lines.length && !isSignificant(this.lines[j]!)) j++;
    return this.lines[j];
  }

  private parseBlock(indent: number, path: string): unknown {
    const line = this.lines[this.i]!;
    return isSequenceItem(line.content) ? this.parseSequence(indent, path) : this.parseMap(indent, path);
  }

  private parseMap(n: number, path: string): Record<string, unknown> {
    const map: Record<string, unknown> = {};
    this.skipInsignificant();
    this.values.set(path, this.lines[this.i]!.offset + n);
    for (;;) {
      this.skipInsignificant();
      const line = this.lines[this.i];
      if (!line || line.indent < n) break;
      if (line.indent > n) giveUp();
      const m = KEY.exec(line.content);
      if (!m) {
        if (isSequenceItem(line.content)) break; // a compact sequence ends; the parent decides
        giveUp();
      }
      const key = m[1]!;
      if (RESERVED_KEYS.has(key) || Object.hasOwn(map, key)) giveUp();
      const child = path === '' ? key : `${path}${SEP}${key}`;
      this.keys.set(child, line.offset + n);
      const rest = line.content.slice(m[0].length);
      if (rest === '' || rest.startsWith('#')) {
        this.i++;
        const next = this.peekSignificant();
        if (next && next.indent > n) {
          this.skipInsignificant();
          map[key] = this.parseBlock(next.indent, child);
        } else if (next && next.indent === n && isSequenceItem(next.content)) {
          this.skipInsignificant();
          map[key] = this.parseSequence(n, child);
        } else {
          giveUp(); // an empty value: yaml's null node has its own position rules
        }
      } else {
        map[key] = this.parseInline(rest, line.offset + n + m[0].length, child, n);
      }
    }
    return map;
  }

  private parseSequence(n: number, path: string): unknown[] {
    const list: unknown[] = [];
    this.skipInsignificant();
    this.values.set(path, this.lines[this.i]!.offset + n);
    for (;;) {
      this.skipInsignificant();
      const line = this.lines[this.i];
      if (!line || line.indent < n) break;
      if (line.indent > n) giveUp();
      if (!isSequenceItem(line.content)) break;
      const child = `${path}${SEP}${list.length}`;
      let spaces = 1;
      while (line.content.charCodeAt(spaces) === 32) spaces++;
      const rest = line.content.slice(spaces);
      if (rest === '' || rest.startsWith('#')) {
        this.i++;
        const next = this.peekSignificant();
        if (!next || next.indent <= n) giveUp();
        this.skipInsignificant();
        list.push(this.parseBlock(next.indent, child));
      } else if (isSequenceItem(rest) || KEY.test(rest)) {
        // `- key: value` or `- - x`: the rest of the line opens a block at its own column.
        const indent = n + spaces;
        this.lines[this.i] = { offset: line.offset, indent, content: rest };
        list.push(this.parseBlock(indent, child));
      } else {
        list.push(this.parseInline(rest, line.offset + n + spaces, child, n));
      }
    }
    return list;
  }

  /** A value on the rest of a line; `n` is the indentation of the entry holding it. */
  private parseInline(rest: string, offset: number, path: string, n: number): unknown {
    const first = rest[0]!;
    let value: unknown;
    if (first === '|') return this.parseLiteral(rest, offset, path, n);
    let end: number;
    if (first === '"' || first === "'") {
      const q = readQuoted(rest, 0);
      value = q.value;
      end = q.end;
    } else if (first === '[' || first === '{') {
      const f = this.readFlowValue(rest, 0, offset, path, 0);
      value = f.value;
      end = f.end;
    } else {
      const comment = rest.indexOf(' #');
      const plain = (comment === -1 ? rest : rest.slice(0, comment)).trimEnd();
      if (plain.includes(': ') || plain.endsWith(':')) giveUp();
      value = resolvePlain(plain);
      end = rest.length;
    }
    if (!isTrailer(rest.slice(end))) giveUp();
    this.values.set(path, offset);
    this.i++;
    // A more indented line after a scalar would continue it (or be an error): leave that to yaml.
    const next = this.peekSignificant();
    if (next && next.indent > n) giveUp();
    return value;
  }

  /** `|`, `|-` or `|+` and the lines below it. */
  private parseLiteral(header: string, offset: number, path: string, n: number): string {
    const m = /^\|([-+]?)(?: +#.*| *)$/.exec(header);
    if (!m) giveUp();
    const chomp = m[1];
    this.i++;
    const body: string[] = [];
    let blockIndent = -1;
    let trailingBlank = 0;
    let lastContent = -1;
    while (this.i < this.lines.length) {
      const line = this.lines[this.i]!;
      const blank = line.content === '';
      if (blank) {
        if (blockIndent === -1) giveUp(); // leading empty lines: yaml's rules, not ours
        if (line.indent > blockIndent) giveUp(); // spaces beyond the indentation are content
        trailingBlank++;
        this.i++;
        continue;
      }
      if (blockIndent === -1) {
        if (line.indent <= n) giveUp(); // an empty block scalar
        blockIndent = line.indent;
      }
      if (line.indent < blockIndent) {
        if (line.indent > n) giveUp();
        break;
      }
      for (let k = 0; k < trailingBlank; k++) body.push('');
      trailingBlank = 0;
      body.push(' '.repeat(line.indent - blockIndent) + line.content);
      lastContent = this.i;
      this.i++;
    }
    if (blockIndent === -1) giveUp();
    if (lastContent === this.lines.length - 1 && !this.lastLineEnded) giveUp();
    if (this.i === this.lines.length && trailingBlank > 0 && !this.lastLineEnded) giveUp();
    this.values.set(path, offset);
    const text = body.join('\n');
    if (chomp === '-') return text;
    if (chomp === '+') return `${text}\n${'\n'.repeat(trailingBlank)}`;
    return `${text}\n`;
  }

  /** A value inside a one-line flow collection: a nested collection or a scalar. */
  private readFlowValue(s: string, p: number, offset: number, path: string, depth: number): { value: unknown; end: number } {
    if (depth > 32) giveUp();
    this.values.set(path, offset + p);
    if (s[p] === '[') return this.readFlowSequence(s, p, offset, path, depth + 1);
    if (s[p] === '{') return this.readFlowMap(s, p, offset, path, depth + 1);
    return readFlowScalar(s, p);
  }

  private readFlowSequence(s: string, start: number, offset: number, path: string, depth: number): { value: unknown[]; end: number } {
    const list: unknown[] = [];
    let p = skipSpaces(s, start + 1);
    if (s[p] === ']') return { value: list, end: p + 1 };
    for (;;) {
      const item = this.readFlowValue(s, p, offset, `${path}${SEP}${list.length}`, depth);
      list.push(item.value);
      p = skipSpaces(s, item.end);
      if (s[p] === ']') return { value: list, end: p + 1 };
      if (s[p] !== ',') giveUp();
      p = skipSpaces(s, p + 1);
      if (s[p] === ']') giveUp(); // a trailing comma
    }
  }

  private readFlowMap(s: string, start: number, offset: number, path: string, depth: number): { value: Record<string, unknown>; end: number } {
    const map: Record<string, unknown> = {};
    let p = skipSpaces(s, start + 1);
    if (s[p] === '}') return { value: map, end: p + 1 };
    for (;;) {
      const m = KEY.exec(s.slice(p));
      if (!m || m[0].length === m[1]!.length + 1) giveUp(); // `key:` must be followed by a space here
      const key = m[1]!;
      if (RESERVED_KEYS.has(key) || Object.hasOwn(map, key)) giveUp();
      const child = path === '' ? key : `${path}${SEP}${key}`;
      this.keys.set(child, offset + p);
      p += m[0].length;
      const item = this.readFlowValue(s, p, offset, child, depth);
      map[key] = item.value;
      p = skipSpaces(s, item.end);
      if (s[p] === '}') return { value: map, end: p + 1 };
      if (s[p] !== ',') giveUp();
      p = skipSpaces(s, p + 1);
      if (s[p] === '}') giveUp();
    }
  }
}

function skipSpaces(s: string, p: number): number {
  while (s.charCodeAt(p) === 32) p++;
  return p;
}

/** After a value: nothing, spaces, or spaces and a comment. */
function isTrailer(s: string): boolean {
  const t = s.trimStart();
  return t === '' || (t.startsWith('#') && t.length < s.length);
}

/** A scalar inside a one-line flow collection: quoted, or plain up to `,`, `]` or `}`. */
function readFlowScalar(s: string, p: number): { value: unknown; end: number } {
  const c = s[p];
  if (c === '"' || c === "'") return readQuoted(s, p);
  let end = p;
  while (end < s.length && !',]}'.includes(s[end]!)) end++;
  const plain = s.slice(p, end).trimEnd();
  if (/[[\]{}#]|: |:$/.test(plain)) giveUp();
  return { value: resolvePlain(plain), end };
}

const SIMPLE_ESCAPES: Record<string, string> = { n: '\n', t: '\t', '\\': '\\', '"': '"', '/': '/', r: '\r' };

/** A quoted scalar ending on the same line. */
function readQuoted(s: string, p: number): { value: string; end: number } {
  const quote = s[p]!;
  let out = '';
  let k = p + 1;
  for (;;) {
    if (k >= s.length) giveUp(); // continues on the next line
    const c = s[k]!;
    if (quote === "'") {
      if (c === "'") {
        if (s[k + 1] === "'") {
          out += "'";
          k += 2;
          continue;
        }
        return { value: out, end: k + 1 };
      }
    } else if (c === '"') {
      return { value: out, end: k + 1 };
    } else if (c === '\\') {
      const e = SIMPLE_ESCAPES[s[k + 1] ?? ''];
      if (e === undefined) giveUp();
      out += e;
      k += 2;
      continue;
    }
    out += c;
    k++;
  }
}

function resolvePlain(s: string): unknown {
  if (s === '') giveUp();
  const c = s[0]!;
  if (PLAIN_START_EXCLUDED.has(c) && !(c === '-' && s.length > 1 && s[1] !== ' ')) giveUp();
  if (s.endsWith(' ')) giveUp();
  if (NULL.test(s)) return null;
  if (TRUE.test(s)) return true;
  if (FALSE.test(s)) return false;
  // As yaml resolves them (schema/core/int.js, float.js).
  if (INT.test(s)) return parseInt(s, 10);
  if (FLOAT.test(s)) return parseFloat(s);
  if (OTHER_NUMBER.test(s)) giveUp();
  return s;
}

function lineLookup(file: string, lineStarts: readonly number[]): (offset: number) => SourcePosition {
  return (offset) => {
    let lo = 0;
    let hi = lineStarts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (lineStarts[mid]! <= offset) lo = mid;
      else hi = mid - 1;
    }
    return { file, line: lo + 1, col: offset - lineStarts[lo]! + 1 };
  };
}

function fastPositions(doc: FastDocument, at: (offset: number) => SourcePosition): Pick<ParsedDocument, 'positionOf' | 'keyPositionOf'> {
  const keyOf = (path: readonly (string | number)[], n: number): string => {
    let k = '';
    for (let j = 0; j < n; j++) k = j === 0 ? String(path[0]) : `${k}${SEP}${String(path[j])}`;
    return k;
  };
  const positionOf: PositionLookup = (path) => {
    for (let n = path.length; n >= 0; n--) {
      const offset = doc.values.get(keyOf(path, n));
      if (offset !== undefined) return at(offset);
    }
    return at(doc.start);
  };
  return {
    positionOf,
    keyPositionOf: (path) => {
      const offset = path.length > 0 ? doc.keys.get(keyOf(path, path.length)) : undefined;
      return offset !== undefined ? at(offset) : positionOf(path);
    },
  };
}
