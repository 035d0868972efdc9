/**
 * The render worker: a child process of the render pool (src/spec/render-pool.ts).
 * It parses and renders Liquid templates with the same engine and bounds as the
 * main thread (src/spec/template.ts), so that a slow or huge render never blocks
 * the controller's event loop.
 *
 * Protocol (IPC with structured clone, `serialization: 'advanced'`): the pool sends a `RenderRequest`, the worker
 * answers with one `RenderReply` carrying the same `id`. Templates are parsed once
 * per worker and kept by `templateId` (a bounded cache), so a template rendered
 * for 40 hosts is parsed once. The pool sends a template's text only the first
 * time it asks a worker for it; a worker that has evicted it since answers
 * `{ missing: true }` and the pool sends the request again with the text.
 */
import { scrubSecrets, watchSecrets, type SecretPath } from './render-secrets.js';
import { compileTemplate, TemplateError, TemplateLimitError, type CompiledTemplate, type TemplateLimit, type TemplateVars } from './template.js';

export interface RenderRequest {
  readonly id: number;
  /** Stable for one template text and name during the pool's life. */
  readonly templateId: string;
  readonly name: string;
  /** Left out when the pool believes the worker has the template parsed already. */
  readonly text?: string | undefined;
  readonly vars: TemplateVars;
  /** Where `vars` holds a secret's plaintext (see src/spec/render-secrets.ts); empty for most renders. */
  readonly secretPaths: readonly SecretPath[];
  readonly maxOutputBytes: number;
  readonly timeLimitMs: number;
}

/** A `TemplateError` as plain data. */
export interface RenderFailure {
  readonly file: string;
  readonly line: number | undefined;
  readonly col: number | undefined;
  readonly reason: string;
  readonly undefinedVariable: string | undefined;
  /** Set when a bound stopped the render. */
  readonly limit: TemplateLimit | undefined;
  /** `parse`: the template itself is at fault, whatever the variables. */
  readonly phase: 'parse' | 'render';
}

export type RenderReply =
  /** `readSecret`: the render read a secret variable, so its output is a secret too. */
  | { readonly id: number; readonly ok: true; readonly output: string; readonly bytes: number; readonly ms: number; readonly readSecret: boolean }
  | { readonly id: number; readonly ok: false; readonly failure: RenderFailure; readonly ms: number }
  /** The request had no text and this worker does not have the template (any more). */
  | { readonly id: number; readonly missing: true };

/** Characters of template text kept parsed, across templates. */
const CACHE_CHARS = 64 * 1024 * 1024;

type Parsed = { readonly ok: true; readonly template: CompiledTemplate } | { readonly ok: false; readonly error: TemplateError };

const cache = new Map<string, { readonly parsed: Parsed; readonly chars: number }>();
let cachedChars = 0;

function parsedTemplate(request: RenderRequest): Parsed | undefined {
  const hit = cache.get(request.templateId);
  if (hit) {
    // Most recently used last: Map keeps insertion order.
    cache.delete(request.templateId);
    cache.set(request.templateId, hit);
    return hit.parsed;
  }
  if (request.text === undefined) return undefined;
  let parsed: Parsed;
  try {
    parsed = { ok: true, template: compileTemplate(request.text, request.name) };
  } catch (e) {
    if (!(e instanceof TemplateError)) throw e;
    parsed = { ok: false, error: e };
  }
  cache.set(request.templateId, { parsed, chars: request.text.length });
  cachedChars += request.text.length;
  for (const [key, entry] of cache) {
    if (cachedChars <= CACHE_CHARS || key === request.templateId) break;
    cache.delete(key);
    cachedChars -= entry.chars;
  }
  return parsed;
}

function failure(e: TemplateError, phase: RenderFailure['phase'], secrets: readonly string[] = []): RenderFailure {
  const scrub = (text: string) => (secrets.length === 0 ? text : scrubSecrets(text, secrets));
  return {
    file: e.file,
    line: e.line,
    col: e.col,
    reason: scrub(e.reason),
    undefinedVariable: e.undefinedVariable === undefined ? undefined : scrub(e.undefinedVariable),
    limit: e instanceof TemplateLimitError ? e.limit : undefined,
    phase,
  };
}

export function renderRequest(request: RenderRequest): RenderReply {
  const started = performance.now();
  const elapsed = () => performance.now() - started;
  const parsed = parsedTemplate(request);
  if (parsed === undefined) return { id: request.id, missing: true };
  if (!parsed.ok) return { id: request.id, ok: false, failure: failure(parsed.error, 'parse'), ms: elapsed() };
  let readSecret = false;
  const secrets = request.secretPaths.length === 0 ? [] : watchSecrets(request.vars, request.secretPaths, () => (readSecret = true));
  try {
    const output = parsed.template.render(request.vars, { maxOutputBytes: request.maxOutputBytes, timeLimitMs: request.timeLimitMs });
    return { id: request.id, ok: true, output, bytes: Buffer.byteLength(output), ms: elapsed(), readSecret };
  } catch (e) {
    if (!(e instanceof TemplateError)) throw e;
    return { id: request.id, ok: false, failure: failure(e, 'render', secrets), ms: elapsed() };
  }
}

if (process.send && process.env.CAPSTAN_RENDER_WORKER === '1') {
  const send = process.send.bind(process);
  process.on('message', (request: RenderRequest) => send(renderRequest(request)));
  // The pool's end of the channel closing is the end of this worker.
  process.on('disconnect', () => process.exit(0));
  send({ ready: true });
}
