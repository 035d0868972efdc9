import { inspect } from 'node:util';
import { describe, expect, it } from 'vitest';
import { digestOf, isSensitiveDigest, revealString, SecretUnavailableError, Sensitive } from './sensitive.js';

describe('Sensitive', () => {
  const s = new Sensitive('hunter2', 'hmac-sha256:abc');

  it('prints (sensitive) and serialises as its digest only', () => {
    expect(String(s)).toBe('(sensitive)');
    expect(`${s}`).toBe('(sensitive)');
    expect(inspect({ s })).toBe("{ s: (sensitive) }");
    expect(JSON.stringify({ s })).toBe('{"s":{"$sensitive":"hmac-sha256:abc"}}');
    expect(s.reveal()).toBe('hunter2');
  });

  it('compares by digest after a JSON round trip, and cannot be revealed from it', () => {
    const stored: unknown = JSON.parse(JSON.stringify(s));
    expect(isSensitiveDigest(stored)).toBe(true);
    expect(digestOf(stored)).toBe(digestOf(s));
    expect(() => revealString(stored as Sensitive)).toThrow(SecretUnavailableError);
    expect(revealString(s)).toBe('hunter2');
    expect(revealString('plain')).toBe('plain');
  });
});
