/**
 * Push webhooks from GitHub, GitLab and Gitea: who sent it (a signature or
 * token checked in constant time over the raw body), which delivery it is (for
 * replay detection) and what was pushed. A push only asks for a refresh of the
 * configured stacks that follow that repository and branch: it never adds a
 * stack nor chooses the revision (the pass fetches the branch itself).
 */
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import path from 'node:path';
import type { Secret, StackConfig } from '../reconcile/config.js';

export type WebhookProvider = 'github' | 'gitlab' | 'gitea';
export const WEBHOOK_PROVIDERS: readonly WebhookProvider[] = ['github', 'gitlab', 'gitea'];

type Headers = Record<string, string | string[] | undefined>;

function header(headers: Headers, name: string): string | undefined {
  const v = headers[name];
  return Array.isArray(v) ? v[0] : v;
}

/** Whether `a` and `b` are equal, in time independent of where they differ. */
export function constantTimeEqual(a: Buffer, b: Buffer): boolean {
  // Hash both first: equal lengths for timingSafeEqual, and no length leak.
  const ha = createHash('sha256').update(a).digest();
  const hb = createHash('sha256').update(b).digest();
  return timingSafeEqual(ha, hb) && a.length === b.length;
}

/** Checks the delivery's signature (or token) against one secret. A request without one never passes. */
export function verifyWebhook(provider: WebhookProvider, headers: Headers, rawBody: Buffer, secret: Secret): boolean {
  const key = secret.reveal();
  switch (provider) {
    case 'github': {
      const sig = header(headers, 'x-hub-signature-256');
      if (!sig?.startsWith('sha256=')) return false;
      return hmacMatches(key, rawBody, sig.slice('sha256='.length));
    }
    case 'gitea': {
      const sig = header(headers, 'x-gitea-signature');
      if (!sig) return false;
      return hmacMatches(key, rawBody, sig);
    }
    case 'gitlab': {
      const token = header(headers, 'x-gitlab-token');
      if (!token) return false;
      return constantTimeEqual(Buffer.from(token, 'utf8'), Buffer.from(key, 'utf8'));
    }
  }
}

function hmacMatches(key: string, body: Buffer, hex: string): boolean {
  if (!/^[0-9a-f]{64}$/i.test(hex)) return false;
  const expected = createHmac('sha256', key).update(body).digest();
  return timingSafeEqual(expected, Buffer.from(hex, 'hex'));
}

/** The delivery id the provider sends, or a hash of the body when it sends none (a replayed body is then still caught). */
export function deliveryId(provider: WebhookProvider, headers: Headers, rawBody: Buffer): string {
  const id =
    provider === 'github'
      ? header(headers, 'x-github-delivery')
      : provider === 'gitea'
        ? (header(headers, 'x-gitea-delivery') ?? header(headers, 'x-github-delivery'))
        : (header(headers, 'x-gitlab-event-uuid') ?? header(headers, 'idempotency-key'));
  return id && id.length <= 200 ? id : `body:${createHash('sha256').update(rawBody).digest('hex')}`;
}

export type WebhookEvent =
  | { readonly kind: 'push'; readonly ref: string; readonly after: string | null; readonly repoUrls: readonly string[]; readonly defaultBranch: string | null }
  | { readonly kind: 'ping' }
  | { readonly kind: 'other'; readonly name: string };

/** Reads the event from a verified delivery; throws on a body that is not the JSON the provider sends. */
export function parseWebhookEvent(provider: WebhookProvider, headers: Headers, rawBody: Buffer): WebhookEvent {
  const name = header(headers, provider === 'github' ? 'x-github-event' : provider === 'gitea' ? 'x-gitea-event' : 'x-gitlab-event') ?? '';
  if (name === 'ping') return { kind: 'ping' };
  const isPush = provider === 'gitlab' ? name === 'Push Hook' || name === 'Tag Push Hook' : name === 'push';
  if (!isPush) return { kind: 'other', name };
  const payload = parseBody(header(headers, 'content-type') ?? '', rawBody);
  const ref = str(payload.ref);
  if (!ref) throw new Error('the push has no "ref"');
  const repository = obj(payload.repository);
  const project = obj(payload.project);
  const urls = [
    repository.clone_url,
    repository.ssh_url,
    repository.git_url,
    repository.html_url,
    repository.url,
    repository.git_http_url,
    repository.git_ssh_url,
    repository.homepage,
    project.git_http_url,
    project.git_ssh_url,
    project.web_url,
  ].filter((u): u is string => typeof u === 'string' && u !== '');
  return {
    kind: 'push',
    ref,
    after: str(payload.after) ?? str(payload.checkout_sha) ?? null,
    repoUrls: urls,
    defaultBranch: str(repository.default_branch) ?? str(project.default_branch) ?? null,
  };
}

function parseBody(contentType: string, raw: Buffer): Record<string, unknown> {
  let text = raw.toString('utf8');
  if (contentType.startsWith('application/x-www-form-urlencoded')) {
    text = new URLSearchParams(text).get('payload') ?? '';
  }
  const value = JSON.parse(text) as unknown;
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new Error('the payload is not a JSON object');
  return value as Record<string, unknown>;
}

function obj(v: unknown): Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : {};
}

function str(v: unknown): string | undefined {
  return typeof v === 'string' && v !== '' ? v : undefined;
}

/**
 * One spelling for the ways a repository is written: `https://host/o/r.git`,
 * `ssh://git@host/o/r`, `git@host:o/r.git` all become `host/o/r`; a local path
 * or `file://` URL becomes the absolute path without `.git`.
 */
export function normalizeRepo(repo: string): string {
  const trimmed = repo.trim().replace(/\/+$/, '');
  const strip = (p: string): string => p.replace(/\.git$/, '').replace(/\/+$/, '');
  if (/^[A-Za-z][A-Za-z0-9+.-]*:\/\//.test(trimmed)) {
    try {
      const u = new URL(trimmed);
      if (u.protocol === 'file:') return strip(path.resolve(decodeURIComponent(u.pathname)));
      return strip(`${u.hostname.toLowerCase()}${decodeURIComponent(u.pathname)}`);
    } catch {
      return strip(trimmed);
    }
  }
  const scp = /^(?:[^@/]+@)?([^:/]+):(.+)$/.exec(trimmed);
  if (scp && scp[1]!.length > 1) return strip(`${scp[1]!.toLowerCase()}/${scp[2]!.replace(/^\/+/, '')}`);
  return strip(path.resolve(trimmed));
}

/** Whether a push of `ref` to a repository known by `repoUrls` concerns the stack. */
export function pushMatchesStack(stack: Pick<StackConfig, 'repo' | 'branch'>, event: Extract<WebhookEvent, { kind: 'push' }>): boolean {
  const wanted = normalizeRepo(stack.repo);
  if (!event.repoUrls.some((u) => normalizeRepo(u) === wanted)) return false;
  if (stack.branch === 'HEAD') {
    return event.defaultBranch === null ? event.ref.startsWith('refs/heads/') : event.ref === `refs/heads/${event.defaultBranch}`;
  }
  return event.ref === stack.branch || event.ref === `refs/heads/${stack.branch}` || event.ref === `refs/tags/${stack.branch}`;
}
