/**
 * How Capstan talks to Prometheus and Alertmanager when it delivers their files:
 * their own checkers on the host (content on stdin, argument arrays, no shell),
 * `POST /-/reload`, and their HTTP APIs to confirm what is running.
 *
 * The HTTP calls go from where Capstan runs to `url`: for a host reached over
 * SSH, `url` must be reachable from the controller.
 */
import { parse as parseYaml } from 'yaml';
import { ProviderError } from '../provider.js';
import type { HostHandle } from '../host/host.js';
import type { DesiredFile, FileSetHooks } from './file-set.js';

const CHECK_TIMEOUT_MS = 30_000;
const HTTP_TIMEOUT_MS = 10_000;
const CONFIRM_TIMEOUT_MS = 15_000;
const POLL_MS = 200;

async function runChecker(handle: HostHandle, argv: readonly string[], input: string, what: string, signal: AbortSignal): Promise<void> {
  let result;
  try {
    result = await handle.transport.exec(argv, { timeoutMs: CHECK_TIMEOUT_MS, input, signal });
  } catch (err) {
    const code = (err as { code?: unknown }).code;
    throw new ProviderError(
      code === 'ENOENT'
        ? `${argv[0]} is not installed on ${handle.address}: it is needed to check the ${what} before installing it`
        : `running ${argv[0]} on ${handle.address} failed: ${(err as Error).message}`,
      { cause: err },
    );
  }
  if (result.exitCode !== 0) {
    const output = `${result.stdout}\n${result.stderr}`.replace(/\/dev\/stdin/g, 'the new file').trim();
    throw new ProviderError(`${argv[0]} refused the ${what}${result.timedOut ? ' (timed out)' : ''}: ${output}`);
  }
}

async function http(url: string, init: RequestInit, signal: AbortSignal): Promise<{ status: number; text: string }> {
  const timeout = AbortSignal.timeout(HTTP_TIMEOUT_MS);
  try {
    const res = await fetch(url, { ...init, signal: AbortSignal.any([signal, timeout]) });
    return { status: res.status, text: await res.text() };
  } catch (err) {
    throw new ProviderError(`${init.method ?? 'GET'} ${url} failed: ${(err as Error).message}`, { cause: err });
  }
}

function endpoint(base: string, path: string): string {
  return `${base.replace(/\/+$/, '')}${path}`;
}

async function reload(base: string, what: string, signal: AbortSignal): Promise<void> {
  const res = await http(endpoint(base, '/-/reload'), { method: 'POST' }, signal);
  if (res.status !== 200) {
    throw new ProviderError(`${what} refused to reload (HTTP ${res.status}): ${res.text.trim() || 'no message'}${res.status === 403 || res.status === 405 ? ' (is --web.enable-lifecycle set?)' : ''}`);
  }
}

/** Polls `probe` until it returns null (done) or the timeout; then throws with its last answer. */
async function until(probe: () => Promise<string | null>, signal: AbortSignal): Promise<void> {
  const deadline = Date.now() + CONFIRM_TIMEOUT_MS;
  for (;;) {
    const problem = await probe();
    if (problem === null) return;
    if (Date.now() > deadline || signal.aborted) throw new ProviderError(problem);
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
}

interface ApiRuleGroup {
  name: string;
  file: string;
  rules: { name: string; health: string; lastError?: string }[];
}

/** The rule groups Prometheus has loaded (GET /api/v1/rules). */
export async function loadedRuleGroups(base: string, signal: AbortSignal): Promise<ApiRuleGroup[]> {
  const res = await http(endpoint(base, '/api/v1/rules'), { method: 'GET' }, signal);
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
        await runChecker(handle, [settings.promtool, 'check', 'rules', '/dev/stdin'], f.content, `rule file ${f.path}`, signal);
      }
    },
    async activate(handle, files, signal) {
      await reload(settings.url, `Prometheus at ${settings.url}`, signal);
      const expected = files.filter(isRuleFile).flatMap((f) => groupNamesOf(f.content));
      const file = baseName(settings.ruleFile);
      await until(async () => {
        const groups = (await loadedRuleGroups(settings.url, signal)).filter((g) => baseName(g.file) === file);
        const loaded = new Set(groups.map((g) => g.name));
        const missing = expected.filter((n) => !loaded.has(n));
        if (missing.length > 0) {
          return `Prometheus at ${settings.url} reloaded but does not run the rule groups ${missing.join(', ')} of ${settings.ruleFile}: is its directory matched by rule_files in prometheus.yml?`;
        }
        const broken = groups.flatMap((g) => g.rules.filter((r) => r.health === 'err').map((r) => `${g.name}/${r.name}: ${r.lastError ?? 'error'}`));
        if (broken.length > 0) return `Prometheus at ${settings.url} loaded ${settings.ruleFile} but rules fail to evaluate: ${broken.join('; ')}`;
        return null;
      }, signal);
      void handle;
    },
    async deactivate(_handle, removed, signal) {
      if (removed.length === 0) return;
      await reload(settings.url, `Prometheus at ${settings.url}`, signal);
    },
  };
}

export function alertmanagerHooks(settings: { url: string; amtool: string; configFile: string }): FileSetHooks {
  return {
    async check(handle, files, signal) {
      for (const f of files.filter((x) => x.path === settings.configFile)) {
        await runChecker(handle, [settings.amtool, 'check-config', '/dev/stdin'], f.content, `Alertmanager configuration ${f.path}`, signal);
      }
    },
    async activate(_handle, files, signal) {
      await reload(settings.url, `Alertmanager at ${settings.url}`, signal);
      const wanted = files.find((f) => f.path === settings.configFile)?.content;
      if (wanted === undefined) return;
      await until(async () => {
        const res = await http(endpoint(settings.url, '/api/v2/status'), { method: 'GET' }, signal);
        if (res.status !== 200) return `GET /api/v2/status of Alertmanager at ${settings.url} answered HTTP ${res.status}`;
        const original = (JSON.parse(res.text) as { config?: { original?: string } }).config?.original ?? '';
        return original.trim() === wanted.trim() ? null : `Alertmanager at ${settings.url} reloaded but does not run ${settings.configFile} as written (is it started with --config.file=${settings.configFile}?)`;
      }, signal);
    },
  };
}
