import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { IdentityError, loadIdentities, parseIdentities } from './identity.js';

const KEY = 'AGE-SECRET-KEY-1QQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQ';
const KEY2 = 'AGE-SECRET-KEY-1PPPPPPPPPPPPPPPPPPPPPPPPPPPPPPPPPPPPPPPPPPPPPPPPPPPPPPPPPP';

describe('identities', () => {
  it('reads age-keygen output: comments, blank lines, several keys', () => {
    const text = `# created: 2026-01-01\n# public key: age1xyz\n${KEY}\n\n${KEY2}\n`;
    expect(parseIdentities(text, 'f').keys).toEqual([KEY, KEY2]);
  });

  it('refuses a line that is not an identity without repeating it', () => {
    const bad = 'AGE-SECRET-KEY-1-this-is-secret-material';
    expect(() => parseIdentities(bad, 'identity file x')).toThrow(IdentityError);
    try {
      parseIdentities(bad, 'identity file x');
    } catch (err) {
      expect((err as Error).message).toMatch(/identity file x, line 1/);
      expect((err as Error).message).not.toContain('secret-material');
    }
    expect(() => parseIdentities('# nothing\n', 'f')).toThrow(/holds no age identity/);
  });

  it('takes --identity, then CAPSTAN_AGE_IDENTITY_FILE, then CAPSTAN_AGE_IDENTITY', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'capstan-id-'));
    try {
      const f1 = path.join(dir, 'one.txt');
      const f2 = path.join(dir, 'two.txt');
      await writeFile(f1, KEY + '\n');
      await writeFile(f2, KEY2 + '\n');
      const env = { CAPSTAN_AGE_IDENTITY_FILE: f2, CAPSTAN_AGE_IDENTITY: KEY };
      expect((await loadIdentities({ file: f1, env }))?.keys).toEqual([KEY]);
      expect((await loadIdentities({ env }))?.keys).toEqual([KEY2]);
      expect((await loadIdentities({ env: { CAPSTAN_AGE_IDENTITY: KEY2 } }))?.keys).toEqual([KEY2]);
      expect(await loadIdentities({ env: {} })).toBeUndefined();
      await expect(loadIdentities({ file: path.join(dir, 'missing'), env })).rejects.toThrow(/cannot read the age identity file .*ENOENT/);
      expect((await loadIdentities({ envVariable: 'MY_KEY', env: { MY_KEY: KEY } }))?.origin).toBe('$MY_KEY');
      await expect(loadIdentities({ envVariable: 'MY_KEY', env: {} })).rejects.toThrow(/MY_KEY .* is not set/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
