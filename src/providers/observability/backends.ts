/**
 * How Capstan talks to Prometheus and Alertmanager when it delivers their files:
 * their own checkers on the host (argument arrays, no shell),
 * `POST /-/reload`, and their HTTP APIs to confirm what is running.
 *
 * The HTTP calls go from where Capstan runs to `url`: for a host reached over
 * SSH, `url` must be reachable from the controller.
 */
import { parse as parseYaml } from 'yaml';
import { findMissingProgram } from '../../util/prerequisites.js';
import { ProviderError } from '../provider.js';
import type { HostHandle } from '../host/host.js';
import { ensureParent, inspectConfined, realPathOf } from '../host/paths.js';
import { parseDuration } from './duration.js';
import { CREDENTIAL_KEYS } from './alerting-secrets.js';
import type { DesiredFile, FileSetHooks } from './file-set.js';

const CHECK_TIMEOUT_MS = 30_000;
const HTTP_TIMEOUT_MS = 10_000;

/**
 * Runs the backend's checker on the new content. The content is staged in a
 * dot-file beside its destination (same directory, so relative includes resolve
 * as they will; a `.tmp` suffix, so `*.yml` globs do not load it) and removed
 * afterwards, whatever the outcome.
 */
async function checkStaged(
  handle: HostHandle,
  file: DesiredFile,
  argv: (realPath: string) => string[],
  what: string,
  signal: AbortSignal,
): Promise<void> {
  const slash = file.path.lastIndexOf('/');
  const staged = `${file.path.slice(0, slash)}/.capstan-check-${file.path.slice(slash + 1)}.tmp`;
  await inspectConfined(handle, [staged], { content: false, signal });
  const real = realPathOf(handle.root, staged);
  await ensureParent(handle, real);
  await handle.transport.writeFileAtomic(real, Buffer.from(file.content), { mode: '0600' });
  const command = argv(real);
  try {
    let result;
    try {
      result = await handle.transport.exec(command, { timeoutMs: CHECK_TIMEOUT_MS, signal });
    } catch (err) {
      const missing = findMissingProgram(err);
      throw new ProviderError(
        missing
          ? `${missing.message}; ${handle.address} needs it to check the ${what} before installing it`
          : `running ${command[0]} on ${handle.address} failed: ${(err as Error).message}`,
        { cause: err },
      );
    }
    if (result.exitCode !== 0) {
      const output = `${result.stdout}\n${result.stderr}`.split(real).join(file.path).trim();
      throw new ProviderError(`${command[0]} refused the ${what}${result.timedOut ? ' (timed out)' : ''}: ${output}`);
    }
  } finally {
    await handle.transport.remove(real, { type: 'file' }).catch(() => undefined);
  }
}

/** `what` names the backend for the message when it cannot be reached: `Prometheus at http://...`. */
async function http(url: string, init: RequestInit, signal: AbortSignal, what: string): Promise<{ status: number; text: string }> {
  const timeout = AbortSignal.timeout(HTTP_TIMEOUT_MS);
  try {
    const res = await fetch(url, { ...init, signal: AbortSignal.any([signal, timeout]) });
    return { status: res.status, text: await res.text() };
  } catch (err) {
    if (signal.aborted) throw err;
    throw new ProviderError(`cannot reach ${what}: ${init.method ?? 'GET'} ${url} ${unreachable(err)}`, { cause: err });
  }
}

/** Why fetch failed, in words: undici says only "fetch failed" and hides the errno in `cause`. */
function unreachable(err: unknown): string {
  const e = err as Error & { cause?: { code?: string; message?: string } };
  if (e.name === 'TimeoutError') return `got no answer within ${HTTP_TIMEOUT_MS / 1000} s`;
  switch (e.cause?.code) {
    case 'ECONNREFUSED':
      return 'was refused: nothing listens there (is it running, and is the url right?)';
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return 'failed: the host name does not resolve';
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
      return 'failed: the host is unreachable';
  }
  return `failed: ${e.cause?.message ?? e.message}`;
}

function endpoint(base: string, path: string): string {
  return `${base.replace(/\/+$/, '')}${path}`;
}

async function reload(base: string, what: string, signal: AbortSignal): Promise<void> {
  const res = await http(endpoint(base, '/-/reload'), { method: 'POST' }, signal, what);
  if (res.status !== 200) {
    throw new ProviderError(`${what} refused to reload (HTTP ${res.status}): ${res.text.trim() || 'no message'}${res.status === 403 || res.status === 405 ? ' (is --web.enable-lifecycle set?)' : ''}`);
  }
}

/**
 * Runs the confirmation once: both backends answer `/-/reload` only after the
 * new configuration is in place, so what the API shows then is what runs.
 */
async function confirm(probe: () => Promise<string | null>): Promise<void> {
  const problem = await probe();
  if (problem !== null) throw new ProviderError(problem);
}

interface ApiRuleGroup {
  name: string;
  file: string;
  rules: { name: string; health: string; lastError?: string }[];
}

/** The rule groups Prometheus has loaded (GET /api/v1/rules). */
export async function loadedRuleGroups(base: string, signal: AbortSignal): Promise<ApiRuleGroup[]> {
  const res = await http(endpoint(base, '/api/v1/rules'), { method: 'GET' }, signal, `Prometheus at ${base}`);
  if (res.status !== 200) throw new ProviderError(`GET /api/v1/rules answered HTTP ${res.status}`);
  const body = JSON.parse(res.text) as { data?: { groups?: ApiRuleGroup[] } };
  return body.data?.groups ?? [];
}

function groupNamesOf(content: string): string[] {
  const doc = parseYaml(content) as { groups?: { name?: unknown }[] } | null;
  return (doc?.groups ?? []).map((g) => String(g.name));
}

function baseName(path: string): string {
  return path.slice(path.lastIndexOf('/') + 1);
}

export function prometheusHooks(settings: { url: string; promtool: string; ruleFile: string }): FileSetHooks {
  const isRuleFile = (f: DesiredFile): boolean => f.path === settings.ruleFile;
  return {
    async check(handle, files, signal) {
      for (const f of files.filter(isRuleFile)) {
        await checkStaged(handle, f, (real) => [settings.promtool, 'check', 'rules', real], `rule file ${f.path}`, signal);
      }
    },
    async activate(_handle, files, signal) {
      await reload(settings.url, `Prometheus at ${settings.url}`, signal);
      const expected = files.filter(isRuleFile).flatMap((f) => groupNamesOf(f.content));
      const file = baseName(settings.ruleFile);
      await confirm(async () => {
        const groups = (await loadedRuleGroups(settings.url, signal)).filter((g) => baseName(g.file) === file);
        const loaded = new Set(groups.map((g) => g.name));
        const missing = expected.filter((n) => !loaded.has(n));
        if (missing.length > 0) {
          return `Prometheus at ${settings.url} reloaded but does not run the rule groups ${missing.join(', ')} of ${settings.ruleFile}: is its directory matched by rule_files in prometheus.yml?`;
        }
        const broken = groups.flatMap((g) => g.rules.filter((r) => r.health === 'err').map((r) => `${g.name}/${r.name}: ${r.lastError ?? 'error'}`));
        if (broken.length > 0) return `Prometheus at ${settings.url} loaded ${settings.ruleFile} but rules fail to evaluate: ${broken.join('; ')}`;
        return null;
      });
    },
    async deactivate(_handle, removed, signal) {
      if (removed.length === 0) return;
      await reload(settings.url, `Prometheus at ${settings.url}`, signal);
    },
  };
}

/**
 * `mask` hides the configuration's secret values in whatever amtool or
 * Alertmanager answers before it becomes an error message.
 */
export function alertmanagerHooks(settings: { url: string; amtool: string; configFile: string }, mask: (text: string) => string = (t) => t): FileSetHooks {
  return maskedErrors(mask, {
    async check(handle, files, signal) {
      for (const f of files.filter((x) => x.path === settings.configFile)) {
        await checkStaged(handle, f, (real) => [settings.amtool, 'check-config', real], `Alertmanager configuration ${f.path}`, signal);
      }
    },
    async activate(_handle, files, signal) {
      await reload(settings.url, `Alertmanager at ${settings.url}`, signal);
      const wanted = files.find((f) => f.path === settings.configFile)?.content;
      if (wanted === undefined) return;
      await confirm(async () => {
        const res = await http(endpoint(settings.url, '/api/v2/status'), { method: 'GET' }, signal, `Alertmanager at ${settings.url}`);
        if (res.status !== 200) return `GET /api/v2/status of Alertmanager at ${settings.url} answered HTTP ${res.status}`;
        const original = (JSON.parse(res.text) as { config?: { original?: string } }).config?.original ?? '';
        const mismatch = configMismatch(parseYaml(original), parseYaml(wanted), '');
        return mismatch === null
          ? null
          : `Alertmanager at ${settings.url} reloaded but does not run ${settings.configFile} as written: ${mismatch} (is it started with --config.file=${settings.configFile}?)`;
      });
    },
  });
}

/** The hooks, their errors' messages passed through `mask` (and the original errors, which may quote a secret, dropped). */
function maskedErrors(mask: (text: string) => string, hooks: FileSetHooks): FileSetHooks {
  const guard =
    <A extends unknown[]>(f: ((...args: A) => Promise<void>) | undefined) =>
    f &&
    (async (...args: A): Promise<void> => {
      try {
        await f(...args);
      } catch (err) {
        const text = err instanceof Error ? err.message : String(err);
        const masked = mask(text);
        if (masked === text) throw err;
        throw new ProviderError(masked);
      }
    });
  return { check: guard(hooks.check), activate: guard(hooks.activate), deactivate: guard(hooks.deactivate) };
}

/**
 * Where the configuration Alertmanager runs differs from the one written, or null.
 * Alertmanager reports its configuration re-serialised, defaults filled in and
 * secrets shown as `<secret>`, so every value written must be found at the same
 * place, durations compared by length (`24h` is shown as `1d`).
 */
export function configMismatch(running: unknown, wanted: unknown, path: string): string | null {
  if (Array.isArray(wanted)) {
    if (!Array.isArray(running) || running.length !== wanted.length) return `${path || 'the configuration'} differs`;
    for (const [i, w] of wanted.entries()) {
      const m = configMismatch(running[i], w, `${path}[${i}]`);
      if (m) return m;
    }
    return null;
  }
  if (typeof wanted === 'object' && wanted !== null) {
    if (typeof running !== 'object' || running === null) return `${path || 'the configuration'} differs`;
    for (const [k, w] of Object.entries(wanted)) {
      const m = configMismatch((running as Record<string, unknown>)[k], w, path ? `${path}.${k}` : k);
      if (m) return m;
    }
    return null;
  }
  if (running === wanted || running === '<secret>') return null;
  // A credential's value is never quoted, whichever side holds it.
  if (CREDENTIAL_KEYS.has(path.slice(path.lastIndexOf('.') + 1))) return `${path} differs (a credential: not shown)`;
  if (typeof running === 'string' && typeof wanted === 'string') {
    const a = parseDuration(running);
    if (a !== undefined && a === parseDuration(wanted)) return null;
  }
  return `${path} is ${JSON.stringify(running)}, not ${JSON.stringify(wanted)}`;
}
