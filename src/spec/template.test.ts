import { describe, expect, it } from 'vitest';
import { compileTemplate, describeTemplateFailure, isTemplated, renderTemplate, TemplateError } from './template.js';

function failure(run: () => unknown): TemplateError {
  try {
    run();
  } catch (e) {
    if (e instanceof TemplateError) return e;
    throw e;
  }
  throw new Error('expected a TemplateError');
}

describe('templates', () => {
  it('renders variables, loops and filters', () => {
    const text = 'server {{ host.name }}:{{ port }}\n{% for u in upstreams %}up {{ u | upcase }};\n{% endfor %}{{ upstreams | join: "," }}';
    expect(renderTemplate(text, { host: { name: 'web-1' }, port: 8080, upstreams: ['a', 'b'] })).toBe('server web-1:8080\nup A;\nup B;\na,b');
    expect(renderTemplate('{{ m | json }}', { m: { a: [1, 2] } })).toBe('{"a":[1,2]}');
    expect(renderTemplate('{% if n == nil %}none{% endif %}', { n: null })).toBe('none');
  });

  it('refuses an undefined variable, naming it with its line and column', () => {
    const e = failure(() => renderTemplate('a\n  x {{ listen_port }}', { host: {} }, { name: 'templates/nginx.conf.liquid' }));
    expect(e).toMatchObject({ file: 'templates/nginx.conf.liquid', line: 2, col: 8, undefinedVariable: 'listen_port' });
    expect(e.message).toBe('templates/nginx.conf.liquid:2:8: undefined variable "listen_port"');
    // Nested names, and an undefined variable inside a tag.
    expect(failure(() => renderTemplate('{{ host.nmae }}', { host: { name: 'x' } })).undefinedVariable).toBe('host.nmae');
    expect(failure(() => renderTemplate('{% if missing %}x{% endif %}', {})).undefinedVariable).toBe('missing');
  });

  it('refuses an undefined filter when the template is parsed', () => {
    const e = failure(() => compileTemplate('ok\n{{ x | shout }}', 't.liquid'));
    expect(e.message).toBe('t.liquid:2:1: undefined filter "shout"');
  });

  it('reports syntax errors with their position', () => {
    expect(failure(() => compileTemplate('a\n{% if x %}', 't.liquid')).message).toBe('t.liquid:2:1: tag {% if x %} not closed');
  });

  it('reads no files: include, render and layout are refused', () => {
    for (const tag of ['include "/etc/passwd"', 'render "x"', 'layout "x"']) {
      expect(failure(() => compileTemplate(`{% ${tag} %}`, 't.liquid')).message).toMatch(/t\.liquid:1:1: \{% \w+ %\} is not supported: templates cannot/);
    }
  });

  it('reaches no JavaScript: prototypes and constructors are undefined', () => {
    for (const text of ['{{ a.constructor }}', '{{ a.__proto__ }}', '{{ a.toString }}', '{{ s.constructor.name }}']) {
      expect(failure(() => renderTemplate(text, { a: {}, s: 'x' })).undefinedVariable, text).toBeDefined();
    }
  });

  it('renders the same on every run: no random filter, no current time, dates in UTC', () => {
    expect(failure(() => compileTemplate('{{ a | sample }}', 't')).message).toMatch(/undefined filter "sample": it is random/);
    expect(failure(() => renderTemplate('{{ "now" | date: "%Y" }}', {})).message).toMatch(/"now" is not available/);
    expect(failure(() => renderTemplate('{{ "today" | date_to_xmlschema }}', {})).message).toMatch(/"today" is not available/);
    expect(renderTemplate('{{ 0 | date: "%Y-%m-%d %H:%M" }}', {})).toBe('1970-01-01 00:00');
  });

  it('refuses to print a whole map', () => {
    expect(failure(() => renderTemplate('{{ m }}', { m: { a: 1 } })).message).toMatch(/cannot print a map.*json filter/);
  });

  it('bounds the output, the time and the memory of a render', () => {
    expect(failure(() => renderTemplate('{% for i in (1..100) %}0123456789{% endfor %}', {}, { maxOutputBytes: 500 })).message).toMatch(
      /rendered output is over the limit of 500 bytes/,
    );
    // 200 MB of output would be written without the cap.
    const big = `{% for i in (1..200000) %}${'x'.repeat(1000)}{% endfor %}`;
    expect(failure(() => renderTemplate(big, {})).message).toMatch(/rendered output is over the limit of 16777216 bytes/);
    expect(failure(() => renderTemplate('{% for i in (1..100000000) %}{{ i }}{% endfor %}', {})).message).toMatch(/too much memory|longer than/);
  });

  it('counts the output limit in UTF-8 bytes', () => {
    expect(renderTemplate('{{ s }}', { s: 'é' }, { maxOutputBytes: 2 })).toBe('é');
    expect(failure(() => renderTemplate('{{ s }}{{ s }}', { s: 'é' }, { maxOutputBytes: 3 })).message).toMatch(/over the limit of 3 bytes/);
  });

  it('describes a failure for one host with the names it could have used', () => {
    const vars = { host: { name: 'web-1' }, upstreams: [], listen_port: 1 };
    const e = failure(() => renderTemplate('{{ listen_prot }}', vars, { name: 'templates/n.liquid' }));
    expect(describeTemplateFailure(e, { targetName: 'web-1', vars })).toBe(
      'templates/n.liquid:1:4: undefined variable "listen_prot" (host web-1; defined vars: host, listen_port, upstreams; did you mean "listen_port"?)',
    );
    const syntax = failure(() => compileTemplate('{% if %}', 'x'));
    expect(describeTemplateFailure(syntax, { vars })).toBe(syntax.message);
  });

  it('compiles once and renders for many hosts', () => {
    const t = compileTemplate('{{ host.name }}', 't');
    expect(['a', 'b'].map((name) => t.render({ host: { name } }))).toEqual(['a', 'b']);
    expect(isTemplated('plain')).toBe(false);
    expect(isTemplated('{{ x }}')).toBe(true);
  });
});
