/**
 * Templates: Liquid (LiquidJS), configured for untrusted input and for plans
 * that are a pure function of the repository.
 *
 * - No JavaScript: templates reach only the variables they are given, their own
 *   properties (`ownPropertyOnly`), and Liquid's built-in filters.
 * - Strict: an undefined variable or filter is an error, never an empty string.
 * - Deterministic: no `sample` filter (random), no `"now"`/`"today"` dates, dates
 *   formatted in UTC. The same repository renders the same bytes on every run.
 * - No file access: `{% include %}`, `{% render %}` and `{% layout %}` are refused.
 * - Bounded: template size and parse work (`parseLimit`), render time
 *   (`renderLimit`), allocations in loops and filters (`memoryLimit`), and the
 *   size of the output, checked as it is written.
 *
 * Failures are `TemplateError`s that name the template, the line and column, and
 * what went wrong (an undefined variable is named).
 */
import { didYouMean } from './envelope.js';
import { Context, Liquid, LiquidError, toValue, toValueSync, type Emitter, type FilterImplOptions, type Template } from 'liquidjs';

/** Largest rendered output (default): the same bound as a file read from the repository. */
export const MAX_RENDER_BYTES = 16 * 1024 * 1024;
/** Characters a template may have. */
export const MAX_TEMPLATE_CHARS = 16 * 1024 * 1024;
/** Milliseconds one render may take. */
export const RENDER_TIME_LIMIT_MS = 2000;
/** LiquidJS's allocation budget per render (array sizes, string lengths in filters and loops). */
const MEMORY_LIMIT = 16 * 1024 * 1024;

/** Template variables: a plain JSON-like object. */
export type TemplateVars = Readonly<Record<string, unknown>>;

/** A template that could not be parsed or rendered; `message` is `FILE:LINE:COL: reason`. */
export class TemplateError extends Error {
  constructor(
    /** The template's name as given to `compileTemplate` (a repository path, or a field such as `spec.url`). */
    readonly file: string,
    /** 1-based position in the template, when known. */
    readonly line: number | undefined,
    readonly col: number | undefined,
    /** What went wrong, without the position, e.g. `undefined variable "listen_port"`. */
    readonly reason: string,
    /** The dotted name of the undefined variable, when that is the failure. */
    readonly undefinedVariable?: string,
    options?: ErrorOptions,
  ) {
    super(`${file}${line === undefined ? '' : `:${line}:${col ?? 1}`}: ${reason}`, options);
    this.name = 'TemplateError';
  }
}

/** Which bound a render hit. */
export type TemplateLimit = 'time' | 'output' | 'memory';

/** A render stopped by one of its bounds (time, output size, memory) rather than by an error of the template. */
export class TemplateLimitError extends TemplateError {
  constructor(
    file: string,
    line: number | undefined,
    col: number | undefined,
    reason: string,
    readonly limit: TemplateLimit,
    options?: ErrorOptions,
  ) {
    super(file, line, col, reason, undefined, options);
    this.name = 'TemplateLimitError';
  }
}

export interface RenderOptions {
  /** Largest output in UTF-8 bytes (default `MAX_RENDER_BYTES`). */
  readonly maxOutputBytes?: number | undefined;
  /** Milliseconds this render may take (default `RENDER_TIME_LIMIT_MS`), checked between template nodes. */
  readonly timeLimitMs?: number | undefined;
}

/** A parsed template, rendered once per target. */
export interface CompiledTemplate {
  readonly file: string;
  /** Throws `TemplateError` (`TemplateLimitError` when a bound stopped it). */
  render(vars: TemplateVars, options?: RenderOptions): string;
}

const REFUSED_TAGS: Record<string, string> = {
  include: 'templates cannot include other files',
  render: 'templates cannot render other files',
  layout: 'templates cannot use layouts from other files',
};

let engine: Liquid | undefined;

function liquid(): Liquid {
  if (engine) return engine;
  const l = new Liquid({
    strictVariables: true,
    strictFilters: true,
    ownPropertyOnly: true,
    // Nothing is read from disk: the file-system tags are replaced below, and this
    // in-memory map (empty) is where any lookup would go instead of the disk.
    templates: {},
    dynamicPartials: false,
    cache: false,
    timezoneOffset: 0,
    parseLimit: MAX_TEMPLATE_CHARS,
    renderLimit: RENDER_TIME_LIMIT_MS,
    memoryLimit: MEMORY_LIMIT,
  });
  for (const [tag, why] of Object.entries(REFUSED_TAGS)) {
    l.registerTag(tag, {
      parse() {
        throw new Error(`{% ${tag} %} is not supported: ${why}`);
      },
      render() {
        return '';
      },
    });
  }
  // Randomness would make every plan differ.
  l.unregisterFilter('sample');
  // The current time too: "now" and "today" are refused, other dates format as before.
  for (const name of Object.keys(l.filters).filter((n) => n.startsWith('date'))) {
    const original = l.filters[name]!;
    const handler: FilterImplOptions = typeof original === 'function' ? original : original.handler;
    const wrapped: FilterImplOptions = function (this: unknown, value: unknown, ...args: unknown[]) {
      const v = toValue(value);
      if (v === 'now' || v === 'today') {
        throw new Error(`"${v}" is not available: a template renders the same on every run; pass the date in a variable`);
      }
      return (handler as (this: unknown, ...a: unknown[]) => unknown).call(this, value, ...args);
    };
    l.registerFilter(name, typeof original === 'function' ? wrapped : { ...original, handler: wrapped });
  }
  engine = l;
  return l;
}

/** Parses `text`; `file` names the template in errors. Throws `TemplateError` (syntax, undefined filter, refused tag). */
export function compileTemplate(text: string, file: string): CompiledTemplate {
  if (text.length > MAX_TEMPLATE_CHARS) {
    throw new TemplateError(file, undefined, undefined, `template is ${text.length} characters, over the limit of ${MAX_TEMPLATE_CHARS}`);
  }
  let templates: Template[];
  try {
    templates = liquid().parse(text);
  } catch (e) {
    throw toTemplateError(e, file);
  }
  return {
    file,
    render: (vars, options) => renderCompiled(templates, file, vars, options?.maxOutputBytes ?? MAX_RENDER_BYTES, options?.timeLimitMs ?? RENDER_TIME_LIMIT_MS),
  };
}

/**
 * Renders a template string with `vars`: what the engine uses for health-check
 * URLs and commands. `name` appears in errors. Throws `TemplateError`.
 */
export function renderTemplate(text: string, vars: TemplateVars, options: RenderOptions & { readonly name?: string } = {}): string {
  return compileTemplate(text, options.name ?? 'template').render(vars, options);
}

/** True when `text` contains Liquid markup (`{{` or `{%`); plain text renders to itself. */
export function isTemplated(text: string): boolean {
  return text.includes('{{') || text.includes('{%');
}

class OutputTooLarge extends Error {
  constructor(readonly limit: number) {
    super(`output is over the limit of ${limit} bytes`);
  }
}

class PrintedMap extends Error {
  constructor() {
    super('cannot print a map: print one of its keys, or use the json filter ({{ value | json }})');
  }
}

/** Writes output like LiquidJS's own emitter, but refuses to grow past `limit` bytes (UTF-8). */
class BoundedEmitter implements Emitter {
  buffer = '';
  private bytes = 0;
  constructor(private readonly limit: number) {}

  write(html: unknown): void {
    const text = stringify(html);
    const size = Buffer.byteLength(text);
    if (this.bytes + size > this.limit) throw new OutputTooLarge(this.limit);
    this.bytes += size;
    this.buffer += text;
  }
}

function stringify(value: unknown): string {
  const v: unknown = toValue(value);
  if (typeof v === 'string') return v;
  if (v === null || v === undefined) return '';
  if (Array.isArray(v)) return v.map(stringify).join('');
  // "[object Object]" is never what a configuration file wants.
  if (typeof v === 'object' && Object.getPrototypeOf(v) === Object.prototype) throw new PrintedMap();
  return String(v);
}

function renderCompiled(templates: Template[], file: string, vars: TemplateVars, limit: number, timeLimitMs: number): string {
  const l = liquid();
  const emitter = new BoundedEmitter(limit);
  try {
    const ctx = new Context(vars, l.options, { sync: true, renderLimit: timeLimitMs }, { liquid: l });
    toValueSync(l.renderer.renderTemplates(templates, ctx, emitter));
  } catch (e) {
    throw toTemplateError(e, file, timeLimitMs);
  }
  return emitter.buffer;
}

const POSITION_SUFFIX = /, (?:file:.*, )?line:\d+, col:\d+$/;

function toTemplateError(e: unknown, file: string, timeLimitMs = RENDER_TIME_LIMIT_MS): TemplateError {
  let line: number | undefined;
  let col: number | undefined;
  let cause: unknown = e;
  if (LiquidError.is(e)) {
    const position = (e as LiquidError).token?.getPosition();
    if (position && position.length >= 2) [line, col] = position;
    cause = (e as LiquidError).originalError ?? e;
  }
  if (cause instanceof OutputTooLarge) {
    return new TemplateLimitError(file, line, col, `rendered output is over the limit of ${cause.limit} bytes`, 'output', { cause: e });
  }
  const raw = (cause instanceof Error ? cause.message : String(cause)).replace(POSITION_SUFFIX, '');
  const undefinedVariable = /^undefined variable: (.+)$/.exec(raw)?.[1];
  if (undefinedVariable !== undefined) {
    return new TemplateError(file, line, col, `undefined variable ${JSON.stringify(undefinedVariable)}`, undefinedVariable, { cause: e });
  }
  const undefinedFilter = /^undefined filter: (.+)$/.exec(raw)?.[1];
  if (undefinedFilter !== undefined) {
    const why = undefinedFilter === 'sample' ? ': it is random, and a template must render the same on every run' : '';
    return new TemplateError(file, line, col, `undefined filter ${JSON.stringify(undefinedFilter)}${why}`, undefined, { cause: e });
  }
  if (raw === 'template render limit exceeded') {
    return new TemplateLimitError(file, line, col, `rendering took longer than ${timeLimitMs} ms`, 'time', { cause: e });
  }
  if (raw === 'memory alloc limit exceeded') {
    return new TemplateLimitError(file, line, col, 'rendering needs too much memory (a loop or filter over too many items)', 'memory', { cause: e });
  }
  if (raw === 'template parse limit exceeded') {
    return new TemplateError(file, line, col, `template is over the limit of ${MAX_TEMPLATE_CHARS} characters`, undefined, { cause: e });
  }
  if (cause instanceof RangeError && /Invalid string length/.test(raw)) {
    return new TemplateLimitError(file, line, col, 'rendering produced a string too large', 'memory', { cause: e });
  }
  return new TemplateError(file, line, col, raw, undefined, { cause: e });
}

/**
 * The user-facing message for a template that failed for one target:
 * `templates/nginx.conf.liquid:12:8: undefined variable "listen_port" (host web-1; defined vars: host, upstreams)`.
 */
export function describeTemplateFailure(err: TemplateError, facts: { readonly targetName?: string | undefined; readonly vars: TemplateVars }): string {
  const where: string[] = [];
  if (facts.targetName !== undefined) where.push(`host ${facts.targetName}`);
  if (err.undefinedVariable !== undefined) {
    const names = Object.keys(facts.vars).sort();
    where.push(`defined vars: ${names.length > 0 ? names.join(', ') : '(none)'}`);
    const top = err.undefinedVariable.split(/[.[]/)[0]!;
    const hint = Object.hasOwn(facts.vars, top) ? undefined : didYouMean(top, names);
    if (hint !== undefined) where.push(`did you mean "${hint}"?`);
  }
  return where.length > 0 ? `${err.message} (${where.join('; ')})` : err.message;
}
