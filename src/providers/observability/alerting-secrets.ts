/**
 * Receiver credentials given as `{ secret: PATH }` are written into the
 * Alertmanager configuration itself (Debian's Alertmanager has no `url_file` for
 * webhooks), so that file is sensitive. Three texts come from one spec:
 *
 * - the real text, with the secrets revealed: written to the host and checked by
 *   amtool, never shown;
 * - the shown text, with each secret replaced by a token of its keyed digest
 *   (`(sensitive hmac-sha256:...)`, or `https://sensitive.invalid/hmac-sha256:...`
 *   where Alertmanager wants a URL, so amtool still accepts it): what plans diff,
 *   what `capstan render` writes, and what is compared for no-op and drift;
 * - the live text read back from the host, redacted the same way with this run's
 *   digester: every credential value (by key, anywhere in the file) is replaced by
 *   its token, unless the spec writes that same plain value at that place (a plain
 *   webhook URL is public). A credential left over from an earlier configuration
 *   is therefore never shown either.
 */
import { parse as parseYaml } from 'yaml';
import { SecretDigester } from '../../secrets/digest.js';
import { digestOf, isSensitive, SecretUnavailableError, SENSITIVE_TEXT } from '../../secrets/sensitive.js';
import { renderAlertmanagerConfig, type AlertingSpec } from './alerting.js';
import { toYamlText } from './yaml-text.js';

/** Alertmanager configuration keys whose values are (or may be) credentials. */
export const CREDENTIAL_KEYS: ReadonlySet<string> = new Set([
  'url',
  'api_url',
  'webhook_url',
  'slack_api_url',
  'routing_key',
  'service_key',
  'api_key',
  'opsgenie_api_key',
  'victorops_api_key',
  'api_secret',
  'wechat_api_secret',
  'auth_password',
  'auth_secret',
  'smtp_auth_password',
  'smtp_auth_secret',
  'password',
  'credentials',
  'bearer_token',
  'token',
  'bot_token',
  'user_key',
  'secret_key',
  'client_secret',
]);

const URL_KEYS: ReadonlySet<string> = new Set(['url', 'api_url', 'webhook_url', 'slack_api_url']);

/** What a secret at `key` is shown as: its keyed digest, shaped as a URL where Alertmanager wants one. */
export function secretToken(key: string, digest: string): string {
  return URL_KEYS.has(key) ? `https://sensitive.invalid/${digest}` : `(sensitive ${digest})`;
}

type Visit = (value: unknown, key: string, path: readonly (string | number)[]) => unknown;

/** A copy of a rendered configuration with `visit` applied to every value that is not a plain object or array. */
function mapLeaves(value: unknown, visit: Visit, key = '', path: (string | number)[] = []): unknown {
  if (Array.isArray(value)) return value.map((v, i) => mapLeaves(v, visit, key, [...path, i]));
  if (typeof value === 'object' && value !== null && !isSensitive(value) && digestOf(value) === undefined) {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, mapLeaves(v, visit, k, [...path, k])]));
  }
  return visit(value, key, path);
}

function holdsSecrets(rendered: unknown): boolean {
  let found = false;
  mapLeaves(rendered, (v) => {
    if (digestOf(v) !== undefined) found = true;
    return v;
  });
  return found;
}

/** The configuration to write: secrets revealed. Throws SecretUnavailableError for a spec read back from a plan or the store. */
export function alertmanagerConfigText(spec: AlertingSpec): string {
  return toYamlText(
    mapLeaves(renderAlertmanagerConfig(spec), (v) => {
      if (isSensitive(v)) return v.reveal();
      if (digestOf(v) !== undefined) throw new SecretUnavailableError();
      return v;
    }),
  );
}

/** The configuration with each secret as its token; undefined when it holds none (then it is shown as written). */
export function alertmanagerShownText(spec: AlertingSpec): string | undefined {
  const rendered = renderAlertmanagerConfig(spec);
  if (!holdsSecrets(rendered)) return undefined;
  return toYamlText(mapLeaves(rendered, (v, key) => (digestOf(v) !== undefined ? secretToken(key, digestOf(v)!) : v)));
}

/** What `capstan render` writes: the shown text when there are secrets (a render is for inspection, never for secrets). */
export function alertmanagerRenderedText(spec: AlertingSpec): string {
  return alertmanagerShownText(spec) ?? alertmanagerConfigText(spec);
}

function at(value: unknown, path: readonly (string | number)[]): unknown {
  let v = value;
  for (const p of path) {
    if (typeof v !== 'object' || v === null) return undefined;
    v = (v as Record<string | number, unknown>)[p];
  }
  return v;
}

export interface RedactedLiveText {
  /** The text with credentials replaced by tokens (the file as read when nothing was replaced). */
  readonly text: string;
  readonly redacted: boolean;
  /** The file differs from the canonical form of its content (comments, formatting), which the redacted text cannot show. */
  readonly reformatted: boolean;
}

/**
 * The live file as it may be shown and stored. Null when it is not YAML and the
 * spec holds secrets (it could hold one where no key names it).
 */
export function redactLiveAlertmanagerText(text: string, spec: AlertingSpec | null, digester: SecretDigester | undefined): RedactedLiveText | null {
  const rendered = spec ? renderAlertmanagerConfig(spec) : undefined;
  let parsed: unknown;
  try {
    parsed = parseYaml(text);
  } catch {
    return rendered !== undefined && holdsSecrets(rendered) ? null : { text, redacted: false, reformatted: false };
  }
  const keyed = digester ?? SecretDigester.forIdentity(undefined);
  let redacted = false;
  const out = mapLeaves(parsed, (v, key, path) => {
    if (typeof v !== 'string' || !CREDENTIAL_KEYS.has(key)) return v;
    if (at(rendered, path) === v) return v;
    redacted = true;
    return secretToken(key, keyed.digest(v));
  });
  if (!redacted) return { text, redacted: false, reformatted: false };
  return { text: toYamlText(out), redacted: true, reformatted: toYamlText(parsed) !== text };
}

/** The secret values of a spec, for masking tool output (amtool, Alertmanager's answers) before it reaches an error. */
export function alertmanagerSecretValues(spec: AlertingSpec): string[] {
  const values: string[] = [];
  mapLeaves(renderAlertmanagerConfig(spec), (v) => {
    if (isSensitive(v) && typeof v.reveal() === 'string' && v.reveal() !== '') values.push(v.reveal() as string);
    return v;
  });
  return values;
}

export function maskValues(text: string, values: readonly string[]): string {
  let out = text;
  for (const v of values) out = out.split(v).join(SENSITIVE_TEXT);
  return out;
}
