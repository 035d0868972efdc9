import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { formatDiagnostic } from '../diag/diagnostic.js';
import { parseYamlDocuments } from './parse-yaml.js';

const messages = (r: ReturnType<typeof parseYamlDocuments>) => r.diagnostics.map(formatDiagnostic);

function billionLaughs(levels: number): string {
  const lines = ['kind: File', 'name: lol', 'spec:', '  a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]'];
  for (let i = 1; i < levels; i++) lines.push(`  a${i}: &a${i} [${Array(9).fill(`*a${i - 1}`).join(',')}]`);
  return lines.join('\n') + '\n';
}

describe('parseYamlDocuments', () => {
  it('parses every document with 1-based positions of nodes and keys', () => {
    const text = ['kind: Host', 'name: web-1', 'spec:', '  groups: [web, db]', '---', '', 'kind: File', 'name: motd', 'spec:', '  path: /etc/motd'].join('\n');
    const r = parseYamlDocuments(text, 'dir/a.yaml');
    expect(messages(r)).toEqual([]);
    expect(r.count).toBe(2);
    expect(r.documents.map((d) => [d.index, d.value['name'], d.source])).toEqual([
      [0, 'web-1', { file: 'dir/a.yaml', line: 1, col: 1 }],
      [1, 'motd', { file: 'dir/a.yaml', line: 7, col: 1 }],
    ]);
    const [host, file] = r.documents;
    expect(host!.positionOf(['spec', 'groups', 1])).toEqual({ file: 'dir/a.yaml', line: 4, col: 17 });
    expect(host!.positionOf(['spec', 'groups'])).toEqual({ file: 'dir/a.yaml', line: 4, col: 11 });
    expect(host!.keyPositionOf(['spec', 'groups'])).toEqual({ file: 'dir/a.yaml', line: 4, col: 3 });
    expect(file!.positionOf(['spec', 'path'])).toEqual({ file: 'dir/a.yaml', line: 10, col: 9 });
    // Paths that do not exist fall back to the nearest existing ancestor, then the document.
    expect(file!.positionOf(['spec', 'mode', 'deeper'])).toEqual({ file: 'dir/a.yaml', line: 10, col: 3 });
    expect(file!.positionOf(['target'])).toEqual({ file: 'dir/a.yaml', line: 7, col: 1 });
    expect(file!.keyPositionOf(['nope'])).toEqual({ file: 'dir/a.yaml', line: 7, col: 1 });
  });

  it('ignores empty documents and comment-only files', () => {
    expect(parseYamlDocuments('', 'a.yaml').documents).toEqual([]);
    expect(parseYamlDocuments('# nothing here\n', 'a.yaml').documents).toEqual([]);
    const r = parseYamlDocuments('---\n---\n# c\n---\nkind: Host\nname: h\n---\n', 'a.yaml');
    expect(messages(r)).toEqual([]);
    expect(r.documents.map((d) => d.value['name'])).toEqual(['h']);
  });

  it('refuses documents that are not maps', () => {
    const r = parseYamlDocuments('- a\n- b\n---\nhello\n---\n~\n---\n"quoted"\n', 'x.yml');
    expect(messages(r)).toEqual([
      'x.yml:1:1: a document must be a map with kind, name and spec; found a list',
      'x.yml:4:1: a document must be a map with kind, name and spec; found the scalar "hello"',
      'x.yml:6:1: a document must be a map with kind, name and spec; found the scalar "~"',
      'x.yml:8:1: a document must be a map with kind, name and spec; found the scalar "quoted"',
    ]);
    expect(r.documents).toEqual([]);
  });

  it('reports syntax errors with their position and keeps parsing the next documents', () => {
    const r = parseYamlDocuments('kind: File\nname: x\nspec:\n  path: [/a\n  mode: 1\n---\nkind: Host\nname: ok\n', 'bad.yaml');
    expect(r.diagnostics.length).toBeGreaterThan(0);
    for (const d of r.diagnostics) {
      expect(d.severity).toBe('error');
      expect(d.summary).toMatch(/^YAML syntax error: /);
      expect(d.source?.file).toBe('bad.yaml');
      expect(d.source!.line).toBeGreaterThanOrEqual(4);
    }
    // The broken document's identity is salvaged so that references to it do not cascade.
    expect(r.broken).toEqual([{ kind: 'File', name: 'x', source: { file: 'bad.yaml', line: 1, col: 1 } }]);
    expect(r.documents.map((d) => d.value['name'])).toEqual(['ok']);
  });

  it('rejects duplicate keys', () => {
    const r = parseYamlDocuments('kind: Host\nname: a\nname: b\n', 'dup.yaml');
    expect(messages(r)).toEqual([
      'dup.yaml:3:1: YAML syntax error: Map keys must be unique (a key may appear only once in a map: remove or rename one of them)',
    ]);
  });

  describe('syntax errors: one per document, with a hint', () => {
    it('a tab used for indentation', () => {
      const r = parseYamlDocuments('kind: File\nname: a\nspec:\n\tpath: /x\n', 'tab.yaml');
      expect(messages(r)).toEqual([
        'tab.yaml:4:1: YAML syntax error: Tabs are not allowed as indentation (YAML indents with spaces only: replace the tab with spaces)',
      ]);
    });

    it('a key indented one space short reports the first error of the cascade only', () => {
      const r = parseYamlDocuments('kind: File\nname: b\nspec:\n  path: /x\n content: y\n  mode: 1\n', 'indent.yaml');
      expect(r.diagnostics).toHaveLength(1);
      expect(messages(r)[0]).toMatch(/^indent\.yaml:5:1: YAML syntax error: All mapping items must start at the same column \(check the indentation: /);
    });

    it('a line indented further than its siblings', () => {
      const r = parseYamlDocuments('kind: File\nname: b\nspec:\n  path: /x\n    content: y\n', 'deeper.yaml');
      expect(messages(r)).toHaveLength(1);
      expect(messages(r)[0]).toMatch(/^deeper\.yaml:4:9: .*\(check the indentation: a line below this one is indented further than its siblings/);
    });

    it('an unquoted value containing ": "', () => {
      const r = parseYamlDocuments('kind: File\nname: a\nspec:\n  content: a: b\n', 'colon.yaml');
      expect(messages(r)).toHaveLength(1);
      expect(messages(r)[0]).toContain('a value containing ": " must be quoted');
    });

    it('an unclosed quote points where the quote opened, not at the end of the file', () => {
      const r = parseYamlDocuments("kind: File\nname: a\nspec:\n  path: '/x\n  content: y\n---\nkind: File\nname: b\n", 'quote.yaml');
      expect(messages(r)).toEqual([
        "quote.yaml:4:9: YAML syntax error: Missing closing 'quote (the single quote opened here is never closed: add the closing ' on this line)",
      ]);
    });

    it('two broken documents in one file: one error each', () => {
      const r = parseYamlDocuments('kind: File\nname: a\nspec:\n\tpath: /x\n---\nkind: File\nname: b\nspec:\n\tpath: /y\n', 'two.yaml');
      expect(messages(r).map((m) => m.split(': ')[0])).toEqual(['two.yaml:4:1', 'two.yaml:9:1']);
    });
  });

  it('fails fast with a clear message on a billion-laughs document', () => {
    const started = performance.now();
    const r = parseYamlDocuments(billionLaughs(12), 'bomb.yaml');
    expect(performance.now() - started).toBeLessThan(5000);
    expect(messages(r)).toEqual(['bomb.yaml:1:1: too many alias expansions (more than 100): refusing what looks like an alias bomb']);
    expect(r.documents).toEqual([]);
  });

  it('allows ordinary aliases and merge keys', () => {
    const text = 'kind: File\nname: x\nspec:\n  defaults: &d { mode: "0644", owner: root }\n  merged:\n    <<: *d\n    path: /a\n  copy: *d\n';
    const r = parseYamlDocuments(text, 'ok.yaml');
    expect(messages(r)).toEqual([]);
    expect(r.documents[0]!.value['spec']).toEqual({
      defaults: { mode: '0644', owner: 'root' },
      merged: { mode: '0644', owner: 'root', path: '/a' },
      copy: { mode: '0644', owner: 'root' },
    });
  });

  it('honours a lower alias limit', () => {
    const text = 'kind: File\nname: x\nspec: { a: &a 1, b: [*a, *a, *a] }\n';
    expect(messages(parseYamlDocuments(text, 'a.yaml', { maxAliasCount: 2 }))[0]).toMatch(/too many alias expansions \(more than 2\)/);
    expect(messages(parseYamlDocuments(text, 'a.yaml', { maxAliasCount: 10 }))).toEqual([]);
  });

  it('stops at the document limit', () => {
    const text = Array.from({ length: 10 }, (_, i) => `kind: Host\nname: h${i}\n`).join('---\n');
    const r = parseYamlDocuments(text, 'many.yaml', { maxDocuments: 4, documentLimit: 100_000 });
    expect(r.limitReached).toBe(true);
    expect(r.documents).toHaveLength(4);
    expect(messages(r)).toEqual(['many.yaml:12:1: too many YAML documents: a stack may hold at most 100000 (split the stack or remove generated documents)']);
  });

  it('refuses text over the size limit', () => {
    expect(messages(parseYamlDocuments('kind: Host\nname: é\n', 'big.yaml', { maxBytes: 19 }))).toEqual(['big.yaml:1:1: file is over the limit of 19 bytes']);
    expect(parseYamlDocuments('kind: Host\nname: é\n', 'big.yaml', { maxBytes: 20 }).documents).toHaveLength(1);
  });

  it('reports an unresolved alias instead of throwing', () => {
    const r = parseYamlDocuments('kind: File\nname: x\nspec: *nope\n', 'a.yaml');
    expect(r.documents).toEqual([]);
    expect(r.diagnostics).toHaveLength(1);
    expect(r.diagnostics[0]!.severity).toBe('error');
    expect(r.diagnostics[0]!.summary).toMatch(/nope/);
  });

  it('turns unknown tags into warnings', () => {
    const r = parseYamlDocuments('kind: File\nname: x\nspec: { a: !custom 1 }\n', 'a.yaml');
    expect(r.diagnostics.map((d) => [d.severity, d.source?.line])).toEqual([['warning', 3]]);
    expect(r.documents).toHaveLength(1);
  });

  it('survives absurd nesting without crashing', () => {
    const depth = 5_000;
    const r = parseYamlDocuments(`kind: File\nname: x\nspec: ${'['.repeat(depth)}${']'.repeat(depth)}\n`, 'deep.yaml');
    expect(r.documents).toEqual([]);
    expect(r.diagnostics.length).toBeGreaterThan(0);
    expect(r.diagnostics.every((d) => d.severity === 'error' && d.source?.file === 'deep.yaml')).toBe(true);
  });
});

// The fast path must agree with yaml on everything it accepts: values, document
// count and indexes, and the position of every node and key.
describe('fast path', () => {
  type Tree = { t: 'map'; entries: [string, Tree][] } | { t: 'seq'; items: Tree[] } | { t: 'scalar'; text: string } | { t: 'literal'; header: string; lines: string[] };

  const keyArb = fc.constantFrom('a', 'b', 'path', 'mode', 'x-y', 'a.b', 'k_1', 'Name', '_u', 'url/p', 'true', 'null', '1a', 'a b', '"q"', '<<', 'constructor');
  const plainArb = fc.constantFrom(
    'hello', 'a b', '0644', '644', '-1', '-0', '+5', '1.5', '1e3', '.inf', '.nan', '0x1F', '0o17', '12345678901234567', 'true', 'False', 'null', '~', 'Null',
    'x: y', 'a #b', 'a#b', 'x:', 'it\'s', 'say "hi"', '[x]', '{y}', 'foo[1]', 'x, y', '- z', '-z', '*a', '&b', '!t', '%p', '@q', '`r', '?', ':', '-', '?x', 'http://x:80/y', 'Yes', '/srv/app', 'a  b',
  );
  const quotedArb = fc.constantFrom(
    "'single'", "'it''s'", "''", '"double"', '""', '"tab\\there"', '"nl\\n"', '"q\\"q"', '"back\\\\"', '"slash\\/"', '"uni\\u00e9"', '"bell\\a"', "'unterminated", '"unterminated', '"a" trailing', "'a'#c",
  );
  const flowArb = fc.constantFrom('[]', '{}', '[a, b]', '[ 1,2 , 3 ]', "['x', \"y\"]", '[a, [b]]', '[a,]', '[a, b', '{ a: 1, b: x }', '{a: 1}', '{ a:1 }', '{ a: [1] }', '{ a: 1, a: 2 }', '{ "k": v }', '[a #c]', '[x: y]', '[ ]', '{ }', '{ a: { b: c }, d: [e, { f: 0644 }] }', '[{a: 1}, []]', '[[]]', '{ a: b }x', '[ "a", \'b\' ]');
  const commentArb = fc.constantFrom('', '', '', '  # c', ' #c', '#c', '   ');
  const literalLineArb = fc.constantFrom('text', '# not a comment', '  more indented', '', 'key: value', '- item', "it's");

  interface Pools {
    key: fc.Arbitrary<string>;
    plain: fc.Arbitrary<string>;
    quoted: fc.Arbitrary<string>;
    flow: fc.Arbitrary<string>;
    header: fc.Arbitrary<string>;
  }
  const makeTreeArb = (pools: Pools): fc.Arbitrary<Tree> =>
    fc.letrec<{ tree: Tree; map: Tree; seq: Tree; leaf: Tree }>((tie) => ({
      leaf: fc.oneof(
        { weight: 6, arbitrary: pools.plain.map((text): Tree => ({ t: 'scalar', text })) },
        { weight: 3, arbitrary: pools.quoted.map((text): Tree => ({ t: 'scalar', text })) },
        { weight: 2, arbitrary: pools.flow.map((text): Tree => ({ t: 'scalar', text })) },
        {
          weight: 2,
          arbitrary: fc.record({ header: pools.header, lines: fc.array(literalLineArb, { minLength: 1, maxLength: 4 }) }).map((l): Tree => ({ t: 'literal', ...l })),
        },
      ),
      map: fc.array(fc.tuple(pools.key, tie('tree')), { minLength: 1, maxLength: 4 }).map((entries): Tree => ({ t: 'map', entries })),
      seq: fc.array(tie('tree'), { minLength: 1, maxLength: 3 }).map((items): Tree => ({ t: 'seq', items })),
      tree: fc.oneof({ depthSize: 'small', withCrossShrink: true }, tie('leaf'), tie('leaf'), tie('map'), tie('seq')),
    })).tree;
  const treeArb = makeTreeArb({ key: keyArb, plain: plainArb, quoted: quotedArb, flow: flowArb, header: fc.constantFrom('|', '|-', '|+', '| # c', '|2', '>', '>-') });
  // Mostly inside the subset, so that the fast path is exercised deeply.
  const cleanTreeArb = makeTreeArb({
    key: fc.constantFrom('a', 'b', 'path', 'mode', 'x-y', 'a.b', 'k_1', 'Name'),
    plain: fc.constantFrom('hello', 'a b', '0644', '-1', '+5', '-0', '12345678901234567890', 'true', 'null', '~', 'a#b', 'foo[1]', 'x, y', '-z', '/srv/app', 'http://x:80/y', '1.5', '.5', '1e3', '-2.5E-3', '1.'),
    quoted: fc.constantFrom("'single'", "'it''s'", "''", '"double"', '""', '"nl\\n"', '"q\\"q"'),
    flow: fc.constantFrom('[]', '{}', '[a, b]', '[ 1,2 , 3 ]', "['x', \"y\"]", '{ a: 1, b: x }', '{ a: { b: c }, d: [e] }'),
    header: fc.constantFrom('|', '|-', '|+', '|  # c'),
  });

  interface Style {
    indents: number[];
    comments: string[];
    blanks: boolean[];
    compact: boolean[];
  }
  const styleArb = (minIndent: number) => fc.record({
    indents: fc.array(fc.integer({ min: minIndent, max: 4 }), { minLength: 8, maxLength: 8 }),
    comments: fc.array(commentArb, { minLength: 8, maxLength: 8 }),
    blanks: fc.array(fc.boolean(), { minLength: 8, maxLength: 8 }),
    compact: fc.array(fc.boolean(), { minLength: 8, maxLength: 8 }),
  });

  function render(tree: Tree, style: Style): string {
    let k = 0;
    const pick = <T,>(xs: T[]): T => xs[k++ % xs.length]!;
    const out: string[] = [];
    const block = (node: Tree, indent: number, opener: string): void => {
      // `opener` is `key:` or `-` at `indent`, already decided by the caller.
      const pad = ' '.repeat(indent);
      if (node.t === 'scalar') out.push(`${pad}${opener} ${node.text}${pick(style.comments)}`);
      else if (node.t === 'literal') {
        out.push(`${pad}${opener} ${node.header}`);
        const inner = indent + 1 + pick(style.indents);
        for (const l of node.lines) out.push(l === '' ? '' : ' '.repeat(inner) + l);
      } else {
        const step = pick(style.indents);
        if (node.t === 'seq' && opener !== '-' && pick(style.compact)) {
          out.push(`${pad}${opener}${pick(style.comments)}`);
          seq(node, indent);
        } else if (opener === '-' && pick(style.compact)) {
          // `- key: value` / `- - x`: the first line continues on the dash line
          const at = out.length;
          if (node.t === 'map') map(node, indent + 2);
          else seq(node, indent + 2);
          out[at] = `${pad}- ${out[at]!.slice(indent + 2)}`;
        } else {
          out.push(`${pad}${opener}${pick(style.comments)}`);
          if (node.t === 'map') map(node, indent + step);
          else seq(node, indent + step);
        }
      }
      if (pick(style.blanks)) out.push(pick(style.blanks) ? '' : `${' '.repeat(pick(style.indents))}# between`);
    };
    const map = (node: Extract<Tree, { t: 'map' }>, indent: number): void => {
      for (const [key, child] of node.entries) block(child, indent, `${key}:`);
    };
    const seq = (node: Extract<Tree, { t: 'seq' }>, indent: number): void => {
      for (const child of node.items) block(child, indent, '-');
    };
    if (tree.t === 'map') map(tree, 0);
    else if (tree.t === 'seq') seq(tree, 0);
    else block(tree, 0, 'top:');
    return out.join('\n');
  }

  const documentsArb = (tree: fc.Arbitrary<Tree>, minIndent: number) => fc.record({
    docs: fc.array(fc.tuple(tree, styleArb(minIndent)), { minLength: 1, maxLength: 3 }),
    leadingSeparator: fc.boolean(),
    separator: fc.constantFrom('---', '--- ', '---  '),
    finalNewline: fc.boolean(),
    extra: fc.constantFrom('', '', '---\n', '# trailing comment\n', '\n\n'),
  });

  function allPaths(value: unknown, prefix: (string | number)[] = []): (string | number)[][] {
    const paths = [prefix];
    if (Array.isArray(value)) value.forEach((v, i) => paths.push(...allPaths(v, [...prefix, i])));
    else if (value !== null && typeof value === 'object') for (const [k, v] of Object.entries(value)) paths.push(...allPaths(v, [...prefix, k]));
    return paths;
  }

  function expectSameAsYaml(text: string): boolean {
    const slow = parseYamlDocuments(text, 'f.yaml', { fastPath: false });
    const fast = parseYamlDocuments(text, 'f.yaml');
    if (!fast.fast) {
      expect(fast).toEqual({ ...slow, documents: expect.any(Array) });
      if (process.env.SHOW_GIVE_UPS && slow.diagnostics.length === 0) console.log(JSON.stringify(text));
      return false;
    }
    expect(slow.diagnostics.map(formatDiagnostic), text).toEqual([]);
    expect(fast.count, text).toBe(slow.count);
    expect(fast.documents.map((d) => [d.index, d.value, d.source]), text).toEqual(slow.documents.map((d) => [d.index, d.value, d.source]));
    fast.documents.forEach((d, i) => {
      const s = slow.documents[i]!;
      for (const p of allPaths(d.value)) {
        for (const probe of [p, [...p, 'missing'], [...p, 0]]) {
          expect(d.positionOf(probe), `${text}\npositionOf ${JSON.stringify(probe)}`).toEqual(s.positionOf(probe));
          expect(d.keyPositionOf(probe), `${text}\nkeyPositionOf ${JSON.stringify(probe)}`).toEqual(s.keyPositionOf(probe));
        }
      }
    });
    return true;
  }

  it('agrees with yaml on hand-picked documents, and takes them', () => {
    const cases = [
      'kind: File\nname: motd\ntarget: group:web\ndependsOn: [Directory/app]\nspec:\n  path: /etc/motd\n  content: "hello\\n"\n  mode: "0644"\n',
      '# head\n---\nkind: Host\nname: h  # c\nspec: { groups: [a, b], port: 22 }\n---\n---\nkind: Host\nname: h2\n',
      'a:\n- 1\n- k: v\n  w: [x]\n-   - deep\n    - er\nb: |\n  line 1\n\n    indented\n  # kept\nc: |-\n  x\nd: |+\n  y\n\ne: end',
      'a: 1\n---\n',
      "q: 'it''s'\nr: \"a\\\\b\"\ns: -x\nt: x, y\nu: foo[1]\nv: a#b\n",
    ];
    for (const text of cases) expect(expectSameAsYaml(text), text).toBe(true);
  });

  it('gives up on what it does not model', () => {
    for (const text of ['a: &x 1\nb: *x\n', 'a: >\n  folded\n', 'a: "multi\n  line"\n', 'a: plain\n  continued\n', 'a:\n', '%YAML 1.2\n---\na: 1\n', 'a: 1\r\n', 'a:\tb\n', '? k\n: v\n', 'a: 1\na: 2\n', '- top\n', 'a: 0x1F\n', 'a: [1,\n  2]\n']) {
      expect(parseYamlDocuments(text, 'f.yaml').fast, text).toBe(false);
      expectSameAsYaml(text);
    }
  });

  // CAPSTAN_FUZZ_RUNS=50000 for a longer search; the thresholds scale with it.
  const runs = Number(process.env['CAPSTAN_FUZZ_RUNS'] ?? 1000);

  function property(tree: fc.Arbitrary<Tree>, minIndent: number, numRuns: number): number {
    let taken = 0;
    fc.assert(
      fc.property(documentsArb(tree, minIndent), ({ docs, leadingSeparator, separator, finalNewline, extra }) => {
        let text = (leadingSeparator ? `${separator}\n` : '') + docs.map(([t, style]) => render(t, style)).join(`\n${separator}\n`);
        text += (finalNewline ? '\n' : '') + (finalNewline ? extra : '');
        if (expectSameAsYaml(text)) taken++;
      }),
      { numRuns },
    );
    return taken;
  }

  it('property: whatever it accepts, it reads exactly as yaml does (near the edge of the subset)', () => {
    expect(property(treeArb, 0, runs)).toBeGreaterThan(runs * 0.04);
  });

  it('property: whatever it accepts, it reads exactly as yaml does (mostly inside the subset)', () => {
    // The generator must exercise the fast path, not only the fallback.
    expect(property(cleanTreeArb, 1, runs)).toBeGreaterThan(runs * 0.25);
  });
});
