import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { SecretDigester } from './digest.js';

const A = 'AGE-SECRET-KEY-1QQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQ';
const B = 'AGE-SECRET-KEY-1PPPPPPPPPPPPPPPPPPPPPPPPPPPPPPPPPPPPPPPPPPPPPPPPPPPPPPPPPP';

describe('SecretDigester', () => {
  it('gives the same digest for the same value and identity, another for another identity', () => {
    const a = SecretDigester.forIdentity(A);
    expect(a.digest('hunter2')).toBe(SecretDigester.forIdentity(A).digest('hunter2'));
    expect(a.digest('hunter2')).not.toBe(a.digest('hunter3'));
    expect(a.digest('hunter2')).not.toBe(SecretDigester.forIdentity(B).digest('hunter2'));
    expect(a.keyed).toBe(true);
    expect(SecretDigester.forIdentity(undefined).keyed).toBe(false);
  });

  it('is neither the value, its plain sha256, nor its encodings', () => {
    const d = SecretDigester.forIdentity(A).digest('hunter2');
    expect(d).toMatch(/^hmac-sha256:[0-9a-f]{64}$/);
    expect(d).not.toContain(createHash('sha256').update('hunter2').digest('hex'));
    expect(d).not.toContain(Buffer.from('hunter2').toString('hex'));
  });

  it('digests a value known only by its sha256 the same way (a live file)', () => {
    const a = SecretDigester.forIdentity(A);
    expect(a.digestOfSha256(createHash('sha256').update('hunter2').digest('hex'))).toBe(a.digest('hunter2'));
    expect(a.digest(Buffer.from('hunter2'))).toBe(a.digest('hunter2'));
  });

  it('never serialises its key', () => {
    expect(JSON.stringify({ d: SecretDigester.forIdentity(A) })).toBe('{"d":"(secret digester)"}');
  });
});
