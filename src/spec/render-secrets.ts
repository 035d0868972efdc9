/**
 * Secret variables on their way through the render pool.
 *
 * A `Sensitive` cannot cross the IPC channel (a structured clone drops its
 * private value), so the pool reveals it on the main thread just before sending
 * (`revealVars`): the request carries the plaintext in `vars` and the paths where
 * secrets sit in `secretPaths`. Nothing else ever sees that request: the worker
 * has no stdout, no stderr, no log.
 *
 * In the worker, `watchSecrets` turns each of those properties into a getter
 * that notes it was read: a render that read a secret (printed it, tested it,
 * looped over the map holding it) answers `readSecret: true`, and the main
 * thread seals the output. A failure's message is scrubbed of every secret
 * value first (`scrubSecrets`): Liquid errors can quote what they were given.
 */
import { isSensitive, SENSITIVE_TEXT } from '../secrets/sensitive.js';
import type { TemplateVars } from './template.js';

export type SecretPath = readonly (string | number)[];

const MAX_DEPTH = 64;

/** `vars` with every Sensitive replaced by its value, and where they were; `vars` itself when it holds none. */
export function revealVars(vars: TemplateVars): { readonly vars: TemplateVars; readonly secretPaths: readonly SecretPath[] } {
  const secretPaths: SecretPath[] = [];
  const walk = (value: unknown, at: (string | number)[]): unknown => {
    if (isSensitive(value)) {
      secretPaths.push(at);
      return value.reveal();
    }
    if (at.length >= MAX_DEPTH || typeof value !== 'object' || value === null || ArrayBuffer.isView(value)) return value;
    if (Array.isArray(value)) {
      let changed = false;
      const next = value.map((v, i) => {
        const w = walk(v, [...at, i]);
        changed ||= w !== v;
        return w;
      });
      return changed ? next : value;
    }
    let changed = false;
    const next: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) {
      const w = walk(v, [...at, k]);
      changed ||= w !== v;
      next[k] = w;
    }
    return changed ? next : value;
  };
  const revealed = walk(vars, []) as TemplateVars;
  return { vars: revealed, secretPaths };
}

/**
 * Makes each property at `paths` of `vars` (a structured clone, the worker's own)
 * a getter that calls `onRead`. Returns the secret values, for `scrubSecrets`.
 */
export function watchSecrets(vars: TemplateVars, paths: readonly SecretPath[], onRead: () => void): string[] {
  const values: string[] = [];
  for (const p of paths) {
    let holder: unknown = vars;
    for (const key of p.slice(0, -1)) holder = (holder as Record<string | number, unknown>)[key];
    const key = p[p.length - 1]!;
    const value = (holder as Record<string | number, unknown>)[key];
    values.push(String(value));
    Object.defineProperty(holder, key, {
      enumerable: true,
      configurable: false,
      get() {
        onRead();
        return value;
      },
    });
  }
  return values;
}

/** `text` with every secret value (whole, JSON-escaped, and each longer line of a multi-line one) replaced by `(sensitive)`. */
export function scrubSecrets(text: string, secrets: readonly string[]): string {
  const needles = new Set<string>();
  for (const s of secrets) {
    if (s.length === 0) continue;
    needles.add(s);
    needles.add(JSON.stringify(s).slice(1, -1));
    for (const line of s.split(/\r?\n/)) if (line.trim().length >= 4) needles.add(line.trim());
  }
  let out = text;
  // Longest first: a line of a secret must not break the match of the whole.
  for (const needle of [...needles].sort((a, b) => b.length - a.length)) out = out.split(needle).join(SENSITIVE_TEXT);
  return out;
}
