/**
 * The loader's secret step: every `{ secret: PATH }` object inside a document's
 * `spec` becomes a `Sensitive` holding the decrypted age file, before the
 * provider's schema parses the spec. A field that takes secrets declares it in
 * its schema (`secretString()`); any other field refuses the Sensitive, and
 * `explainRefusedSecrets` turns that refusal into a clear diagnostic.
 *
 * PATH is relative to the document and confined to the repository, as `source:`
 * is. A missing identity, a wrong one, a damaged or truncated file, a missing
 * file: each is an error at the reference (FILE:LINE:COL) naming the secret's
 * path, and the document's spec is dropped, so nothing can be planned from it.
 *
 * Runs on the main thread. The `vars` of a Host, a HostGroup or a File may hold
 * secrets: the render pool reveals them to its worker over IPC only, and a File
 * whose template read one is sealed (src/spec/render-secrets.ts).
 */
import path from 'node:path';
import { error, type Diagnostic, type SourcePosition } from '../diag/diagnostic.js';
import type { ResolveContext } from '../providers/provider.js';
import { SecretFileError } from '../secrets/age-file.js';
import type { Keyring } from '../secrets/keyring.js';
import type { Sensitive } from '../secrets/sensitive.js';
import { baseAddress } from './resource.js';
import type { DeclaredDocument } from './validate.js';

/** One `{ secret: PATH }` found in a spec. */
export interface SecretReference {
  /** Where it sits inside `spec`. */
  readonly specPath: readonly (string | number)[];
  /** PATH as written. */
  readonly secretPath: string;
  readonly source: SourcePosition;
}

export interface ResolvedSecrets {
  /** The documents, with secrets in place (or, for a document with a failed secret, its spec marked invalid). */
  readonly declared: DeclaredDocument[];
  readonly references: readonly SecretReference[];
  readonly diagnostics: Diagnostic[];
}

const MAX_DEPTH = 64;
/** Kinds whose `spec.vars` may hold secrets: the variables of File templates (rendered output that reads one is sealed). */
const KINDS_WITH_SECRET_VARS: ReadonlySet<string> = new Set(['Host', 'HostGroup', 'File']);
const utf8 = new TextDecoder('utf-8', { fatal: true });

/** `{ secret: "..." }` and nothing else. */
function secretReference(value: unknown): string | undefined {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return undefined;
  const keys = Object.keys(value);
  if (keys.length !== 1 || keys[0] !== 'secret') return undefined;
  const secret = (value as { secret: unknown }).secret;
  return typeof secret === 'string' ? secret : undefined;
}

export async function resolveSecrets(declared: readonly DeclaredDocument[], context: ResolveContext, keyring: Keyring): Promise<ResolvedSecrets> {
  const diagnostics: Diagnostic[] = [];
  const references: SecretReference[] = [];
  // Each file is decrypted once per load, however many documents name it.
  const decrypted = new Map<string, Promise<Sensitive<string>>>();
  const open = (secretPath: string, fromFile: string): Promise<Sensitive<string>> => {
    const key = path.resolve(context.repoDir, path.dirname(fromFile), secretPath);
    let found = decrypted.get(key);
    if (!found) {
      found = (async () => {
        const data = await context.readFile(secretPath, fromFile);
        if (keyring.leavesSecretsUnread) return keyring.unreadSecret(path.relative(context.repoDir, key), data);
        const plain = await keyring.decrypt(data);
        let text: string;
        try {
          text = utf8.decode(plain);
        } catch {
          throw new SecretFileError('the decrypted secret is not UTF-8 text', 'corrupt');
        }
        return keyring.seal(text);
      })();
      found.catch(() => undefined);
      decrypted.set(key, found);
    }
    return found;
  };

  const out: DeclaredDocument[] = [];
  for (const d of declared) {
    const doc = d.doc;
    if (!doc || d.invalidKeys.has('spec')) {
      out.push(d);
      continue;
    }
    const address = baseAddress(doc.kind, doc.name);
    let failed = false;
    const walk = async (value: unknown, at: (string | number)[]): Promise<unknown> => {
      const secretPath = secretReference(value);
      if (secretPath !== undefined) {
        const source = doc.positionOf(['spec', ...at]);
        references.push({ specPath: at, secretPath, source });
        if (at.includes('vars') && !(at[0] === 'vars' && KINDS_WITH_SECRET_VARS.has(doc.kind))) {
          failed = true;
          diagnostics.push(
            error(`secret ${secretPath}: these vars cannot hold secrets`, {
              address,
              source,
              detail: `secrets are template variables only in the vars of ${[...KINDS_WITH_SECRET_VARS].join(', ')} (a File template that reads one is sensitive)`,
            }),
          );
          return value;
        }
        try {
          return await open(secretPath, doc.source.file);
        } catch (err) {
          failed = true;
          diagnostics.push(error(`cannot use secret ${secretPath}: ${(err as Error).message}`, { address, source }));
          return value;
        }
      }
      if (at.length >= MAX_DEPTH || typeof value !== 'object' || value === null) return value;
      if (Array.isArray(value)) {
        let changed = false;
        const next = [];
        for (let i = 0; i < value.length; i++) {
          const v = await walk(value[i], [...at, i]);
          changed ||= v !== value[i];
          next.push(v);
        }
        return changed ? next : value;
      }
      let changed = false;
      const next: Record<string, unknown> = {};
      for (const [k, v] of Object.entries(value)) {
        const w = await walk(v, [...at, k]);
        changed ||= w !== v;
        next[k] = w;
      }
      return changed ? next : value;
    };
    const spec = await walk(doc.spec, []);
    if (failed) out.push({ ...d, valid: false, invalidKeys: new Set([...d.invalidKeys, 'spec']) });
    else out.push(spec === doc.spec ? d : { ...d, doc: { ...doc, spec } });
  }
  return { declared: out, references, diagnostics };
}

/**
 * A schema error at the very node of a `{ secret: PATH }` means the field does
 * not take secrets: say so, keeping the schema's words as detail.
 */
export function explainRefusedSecrets(diagnostics: readonly Diagnostic[], references: readonly SecretReference[]): Diagnostic[] {
  if (references.length === 0) return [...diagnostics];
  const at = new Map(references.map((r) => [`${r.source.file}:${r.source.line}:${r.source.col}`, r]));
  return diagnostics.map((d) => {
    const ref = d.source && d.severity === 'error' ? at.get(`${d.source.file}:${d.source.line}:${d.source.col}`) : undefined;
    if (!ref) return d;
    const field = ['spec', ...ref.specPath].join('.');
    return {
      ...d,
      summary: `${field} does not take a secret ({ secret: ${ref.secretPath} }): write the value itself, or use a field that takes secrets`,
      detail: d.detail ? `${d.summary}; ${d.detail}` : d.summary,
    };
  });
}
