/**
 * Secret variables through the render pool, with real worker processes: the
 * worker renders the value, says whether the render read a secret, and scrubs
 * the value from its failures.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { Sensitive } from '../secrets/sensitive.js';
import { RenderPool, type RenderJob } from './render-pool.js';
import { revealVars, scrubSecrets } from './render-secrets.js';

const SECRET = 'pw-Canary-91c2';
const pool = new RenderPool({ size: 1 });
afterAll(() => pool.close());

const job = (text: string, vars: RenderJob['vars']): RenderJob => ({ templateId: text, name: 't.liquid', text, vars, maxOutputBytes: 1024 * 1024, timeLimitMs: 2000 });
const vars = () => ({ app: 'shop', db: { user: 'shop', password: new Sensitive(SECRET, 'hmac-sha256:test') }, list: [new Sensitive('second-Canary', 'hmac-sha256:2')] });

describe('secret variables in the render pool', () => {
  it('renders the value; readSecret says whether the render read one (printed, tested, or through its map)', async () => {
    const cases: [string, string, boolean][] = [
      ['p={{ db.password }}', `p=${SECRET}`, true],
      ['{% if db.password %}set{% endif %}', 'set', true],
      ['{{ db | json }}', JSON.stringify({ user: 'shop', password: SECRET }), true],
      ['{{ list[0] }}', 'second-Canary', true],
      ['{{ app }} as {{ db.user }}', 'shop as shop', false],
    ];
    for (const [text, output, readSecret] of cases) {
      expect(await pool.render(job(text, vars())), text).toMatchObject({ ok: true, output, readSecret });
    }
  });

  it('a failure never quotes the value', async () => {
    const r = await pool.render(job('x={{ db[db.password] }}', vars()));
    expect(r.ok).toBe(false);
    expect(JSON.stringify(r)).not.toContain(SECRET);
    expect(!r.ok && r.failure.reason).toBe('undefined variable "db.(sensitive)"');
    expect(!r.ok && r.failure.undefinedVariable).toBe('db.(sensitive)');
  });

  it('revealVars leaves vars without secrets as they are, and finds them at any depth', () => {
    const plain = { a: 1, b: { c: [1, 2] } };
    expect(revealVars(plain)).toEqual({ vars: plain, secretPaths: [] });
    expect(revealVars(plain).vars).toBe(plain);
    const { vars: revealed, secretPaths } = revealVars(vars());
    expect(secretPaths).toEqual([['db', 'password'], ['list', 0]]);
    expect(revealed).toEqual({ app: 'shop', db: { user: 'shop', password: SECRET }, list: ['second-Canary'] });
  });

  it('scrubSecrets replaces the value whole, JSON-escaped, and the longer lines of a multi-line one', () => {
    const key = '-----BEGIN KEY-----\nQUJDREVGRw==\n-----END KEY-----';
    const text = `got ${JSON.stringify(key)} and QUJDREVGRw== and "${SECRET}" and ab`;
    const out = scrubSecrets(text, [key, SECRET, 'ab\n']);
    expect(out).not.toContain('QUJDREVGRw');
    expect(out).not.toContain(SECRET);
    expect(out).toContain('(sensitive)');
    // Lines shorter than four characters are left: they would blank out ordinary words.
    expect(out.endsWith('and ab')).toBe(true);
  });
});
