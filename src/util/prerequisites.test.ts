import { describe, expect, it } from 'vitest';
import { debianPackageOf, findMissingProgram, groupByMissingProgram, missingProgram, MissingProgramError } from './prerequisites.js';

describe('prerequisites', () => {
  it('names the Debian package of a program given by name or path', () => {
    expect(debianPackageOf('promtool')).toBe('prometheus');
    expect(debianPackageOf('/usr/bin/amtool')).toBe('prometheus-alertmanager');
    expect(debianPackageOf('toString')).toBeUndefined();
    expect(debianPackageOf('no-such-tool')).toBeUndefined();
  });

  it('turns a spawn ENOENT into one line, and leaves other errors alone', () => {
    const enoent = Object.assign(new Error('spawn nft ENOENT'), { code: 'ENOENT', syscall: 'spawn nft' });
    expect(missingProgram('nft', enoent)?.message).toBe('nft not found on PATH: install the Debian package nftables (apt-get install nftables)');
    expect(missingProgram('nft', enoent, 'host Host/web-1')?.message).toBe('nft not found on host Host/web-1: install the Debian package nftables (apt-get install nftables)');
    expect(missingProgram('/opt/x/tool', enoent)?.message).toBe('/opt/x/tool not found: install it, or give its path');
    // ENOENT from open(), not spawn: a missing file, not a missing program.
    expect(missingProgram('nft', Object.assign(new Error('open'), { code: 'ENOENT', syscall: 'open' }))).toBeUndefined();
    expect(missingProgram('nft', Object.assign(new Error('x'), { code: 'EACCES', syscall: 'spawn nft' }))).toBeUndefined();
  });

  it('finds the error in a cause chain', () => {
    const missing = new MissingProgramError('git', 'git', 'PATH');
    expect(findMissingProgram(new Error('outer', { cause: new Error('mid', { cause: missing }) }))).toBe(missing);
    expect(findMissingProgram(new Error('plain'))).toBeUndefined();
  });

  it('groups failures by the program they lack', () => {
    const line = 'nft not found on PATH: install the Debian package nftables (apt-get install nftables)';
    const { missing, other } = groupByMissingProgram([
      { address: 'Firewall/a', error: `Firewall/a on Host/h: ${line}` },
      { address: 'Firewall/b', error: `reading: ${line}` },
      { address: 'File/c', error: 'permission denied' },
      { address: 'Route/d', error: 'ip not found on host Host/r (ssh root@10.0.0.1:22): install the Debian package iproute2 (apt-get install iproute2)' },
    ]);
    expect([...missing]).toEqual([
      [line, ['Firewall/a', 'Firewall/b']],
      ['ip not found on host Host/r (ssh root@10.0.0.1:22): install the Debian package iproute2 (apt-get install iproute2)', ['Route/d']],
    ]);
    expect(other.map((f) => f.address)).toEqual(['File/c']);
  });
});
