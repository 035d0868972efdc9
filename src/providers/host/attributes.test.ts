import * as fs from 'node:fs/promises';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { formatMode } from '../../transport/transport.js';
import { accountSchema, diffAttributes, modeSchema, reconcileAttributes, resolveOwnership } from './attributes.js';
import { openSandbox, type Sandbox } from './testing/sandbox.js';

describe('mode', () => {
  it.each([
    ['644', '0644'],
    ['0644', '0644'],
    ['4755', '4755'],
    ['01777', '1777'],
  ])('normalises %s to %s', (input, output) => {
    expect(modeSchema.parse(input)).toBe(output);
  });

  it.each([
    [644, /quoted octal string/],
    ['0x1ff', /3 or 4 octal digits/],
    ['0888', /3 or 4 octal digits/],
    ['64', /3 or 4 octal digits/],
    ['177777', /3 or 4 octal digits/],
  ])('refuses %j', (input, message) => {
    expect(modeSchema.safeParse(input).error?.issues[0]?.message).toMatch(message);
  });
});

describe('owner and group', () => {
  const owner = accountSchema('owner');
  it('takes names and ids, numeric strings as ids', () => {
    expect(owner.parse('www-data')).toBe('www-data');
    expect(owner.parse('machine$')).toBe('machine$');
    expect(owner.parse(33)).toBe(33);
    expect(owner.parse('33')).toBe(33);
  });

  it.each([
    [-1, /whole number/],
    [1.5, /whole number/],
    ['has space', /user name/],
    ['-rf', /user name/],
    [true, /owner must be a user name or a numeric id/],
  ])('refuses %j', (input, message) => {
    expect(owner.safeParse(input).error?.issues[0]?.message).toMatch(message);
  });

  it('compares a name with the live name and an id with the live id', () => {
    const live = { mode: '0644', uid: 33, gid: 33, owner: 'www-data', group: null };
    expect(diffAttributes({ owner: 'www-data', group: 33 }, live)).toEqual([]);
    expect(diffAttributes({ owner: 33, group: 'www-data' }, live)).toEqual([{ path: 'group', before: 33, after: 'www-data' }]);
  });
});

describe('reconcileAttributes', () => {
  let sandbox: Sandbox;
  beforeEach(async () => {
    sandbox = await openSandbox({ createRoot: true });
  });
  afterEach(async () => {
    await sandbox.cleanup();
  });

  it('keeps an unmanaged setuid bit across a chown, which would clear it', async () => {
    const real = sandbox.real('/tool');
    await fs.writeFile(real, '#!/bin/sh\n');
    await fs.chmod(real, 0o4755);
    const [current] = await sandbox.handle.transport.inspect([real], { content: false, maxContentBytes: 0 });
    const desired = { owner: 'nobody' };
    const ids = await resolveOwnership(sandbox.handle, desired);
    await reconcileAttributes(sandbox.handle, real, current!, desired, ids, { mode: true });
    const st = await fs.stat(real);
    expect([st.uid, formatMode(st.mode)]).toEqual([65534, '4755']);
  });

  it('resolves names on the host and names the missing ones', async () => {
    expect(await resolveOwnership(sandbox.handle, { owner: 'nobody', group: 'nogroup' })).toEqual({ uid: 65534, gid: 65534 });
    expect(await resolveOwnership(sandbox.handle, { owner: 7, group: 8 })).toEqual({ uid: 7, gid: 8 });
    await expect(resolveOwnership(sandbox.handle, { group: 'no-such-group-capstan' })).rejects.toThrow(
      'group "no-such-group-capstan" does not exist on Host/sandbox',
    );
  });
});
