import { createHmac } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { Secret } from '../reconcile/config.js';
import { constantTimeEqual, deliveryId, normalizeRepo, parseWebhookEvent, pushMatchesStack, verifyWebhook } from './webhooks.js';

const secret = new Secret("It's a Secret to Everybody");
const body = Buffer.from('Hello, World!');

describe('webhook signatures', () => {
  it('accepts GitHub’s documented test vector and nothing else', () => {
    // From GitHub's "Validating webhook deliveries" documentation.
    const sig = 'sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17';
    expect(verifyWebhook('github', { 'x-hub-signature-256': sig }, body, secret)).toBe(true);
    expect(verifyWebhook('github', { 'x-hub-signature-256': sig }, Buffer.from('Hello, World?'), secret)).toBe(false);
    expect(verifyWebhook('github', { 'x-hub-signature-256': sig.replace('757', '758') }, body, secret)).toBe(false);
    expect(verifyWebhook('github', { 'x-hub-signature-256': sig }, body, new Secret('other'))).toBe(false);
    expect(verifyWebhook('github', { 'x-hub-signature-256': sig.slice(7) }, body, secret)).toBe(false);
    expect(verifyWebhook('github', { 'x-hub-signature-256': 'sha256=zz' }, body, secret)).toBe(false);
    expect(verifyWebhook('github', {}, body, secret)).toBe(false);
  });

  it('checks Gitea’s bare hex HMAC and GitLab’s token', () => {
    const hex = createHmac('sha256', secret.reveal()).update(body).digest('hex');
    expect(verifyWebhook('gitea', { 'x-gitea-signature': hex }, body, secret)).toBe(true);
    expect(verifyWebhook('gitea', { 'x-gitea-signature': hex }, Buffer.from('x'), secret)).toBe(false);
    expect(verifyWebhook('gitea', {}, body, secret)).toBe(false);
    expect(verifyWebhook('gitlab', { 'x-gitlab-token': secret.reveal() }, body, secret)).toBe(true);
    expect(verifyWebhook('gitlab', { 'x-gitlab-token': secret.reveal() + 'x' }, body, secret)).toBe(false);
    expect(verifyWebhook('gitlab', { 'x-gitlab-token': '' }, body, secret)).toBe(false);
  });

  it('compares in constant time without failing on different lengths', () => {
    expect(constantTimeEqual(Buffer.from('abc'), Buffer.from('abc'))).toBe(true);
    expect(constantTimeEqual(Buffer.from('abc'), Buffer.from('abcd'))).toBe(false);
  });
});

describe('webhook events', () => {
  const push = {
    ref: 'refs/heads/main',
    after: 'a'.repeat(40),
    repository: { clone_url: 'https://github.com/acme/infra.git', ssh_url: 'git@github.com:acme/infra.git', default_branch: 'main' },
  };

  it('reads GitHub pushes from JSON and form bodies, pings and other events', () => {
    const json = Buffer.from(JSON.stringify(push));
    expect(parseWebhookEvent('github', { 'x-github-event': 'push', 'content-type': 'application/json' }, json)).toMatchObject({
      kind: 'push',
      ref: 'refs/heads/main',
      after: 'a'.repeat(40),
      defaultBranch: 'main',
    });
    const form = Buffer.from(`payload=${encodeURIComponent(JSON.stringify(push))}`);
    expect(parseWebhookEvent('github', { 'x-github-event': 'push', 'content-type': 'application/x-www-form-urlencoded' }, form)).toMatchObject({ kind: 'push' });
    expect(parseWebhookEvent('github', { 'x-github-event': 'ping' }, json)).toEqual({ kind: 'ping' });
    expect(parseWebhookEvent('github', { 'x-github-event': 'issues' }, json)).toEqual({ kind: 'other', name: 'issues' });
    expect(() => parseWebhookEvent('github', { 'x-github-event': 'push' }, Buffer.from('{not json'))).toThrow();
    expect(() => parseWebhookEvent('github', { 'x-github-event': 'push' }, Buffer.from('{}'))).toThrow(/no "ref"/);
  });

  it('reads GitLab pushes', () => {
    const gl = { ref: 'refs/heads/main', checkout_sha: 'b'.repeat(40), project: { git_http_url: 'https://gitlab.example.com/ops/infra.git', default_branch: 'main' } };
    expect(parseWebhookEvent('gitlab', { 'x-gitlab-event': 'Push Hook' }, Buffer.from(JSON.stringify(gl)))).toMatchObject({
      kind: 'push',
      after: 'b'.repeat(40),
      repoUrls: ['https://gitlab.example.com/ops/infra.git'],
    });
  });

  it('takes the delivery id from the provider’s header, else a hash of the body', () => {
    expect(deliveryId('github', { 'x-github-delivery': 'd-1' }, body)).toBe('d-1');
    expect(deliveryId('gitea', { 'x-gitea-delivery': 'g-1' }, body)).toBe('g-1');
    expect(deliveryId('gitlab', { 'x-gitlab-event-uuid': 'u-1' }, body)).toBe('u-1');
    expect(deliveryId('gitlab', {}, body)).toBe(deliveryId('gitlab', {}, Buffer.from('Hello, World!')));
    expect(deliveryId('gitlab', {}, body)).not.toBe(deliveryId('gitlab', {}, Buffer.from('other')));
  });
});

describe('which stacks a push concerns', () => {
  it('spells a repository one way whatever the transport', () => {
    const forms = ['https://github.com/acme/infra.git', 'https://GitHub.com/acme/infra/', 'ssh://git@github.com/acme/infra.git', 'git@github.com:acme/infra.git', 'http://user:pw@github.com/acme/infra'];
    expect(new Set(forms.map(normalizeRepo))).toEqual(new Set(['github.com/acme/infra']));
    expect(normalizeRepo('/srv/git/infra.git')).toBe('/srv/git/infra');
    expect(normalizeRepo('file:///srv/git/infra.git')).toBe('/srv/git/infra');
  });

  it('matches repository and branch, never another branch or repository', () => {
    const event = { kind: 'push' as const, ref: 'refs/heads/main', after: null, repoUrls: ['https://github.com/acme/infra.git'], defaultBranch: 'main' };
    expect(pushMatchesStack({ repo: 'git@github.com:acme/infra.git', branch: 'main' }, event)).toBe(true);
    expect(pushMatchesStack({ repo: 'git@github.com:acme/infra.git', branch: 'HEAD' }, event)).toBe(true);
    expect(pushMatchesStack({ repo: 'git@github.com:acme/infra.git', branch: 'staging' }, event)).toBe(false);
    expect(pushMatchesStack({ repo: 'git@github.com:acme/other.git', branch: 'main' }, event)).toBe(false);
    expect(pushMatchesStack({ repo: 'git@github.com:acme/infra.git', branch: 'HEAD' }, { ...event, ref: 'refs/heads/feature' })).toBe(false);
    expect(pushMatchesStack({ repo: 'git@github.com:acme/infra.git', branch: 'v1' }, { ...event, ref: 'refs/tags/v1' })).toBe(true);
  });
});
