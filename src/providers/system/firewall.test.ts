import * as fs from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { firewallProvider, firewallSchema, sshPortOf, structureProblem, tableDefinition, type FirewallSpec } from './firewall.js';
import { converge, ctx, openTestHost, remove, type TestHost } from './testing/hosts.js';

const firewall = (input: Record<string, unknown>): FirewallSpec => firewallSchema.parse({ table: 'capstan_unit', ...input });
const inputChain = (policy: 'accept' | 'drop', rules: string[]) => ({ chains: { input: { hook: 'input', priority: 0, policy, rules } } });

describe('Firewall spec', () => {
  it('generates one table definition, sets before chains', () => {
    const spec = firewall({
      sets: { blocked: { type: 'ipv4_addr', flags: ['interval'], elements: ['198.18.9.0/24'] } },
      chains: { input: { hook: 'input', policy: 'drop', rules: ['ip saddr @blocked drop'] }, audit: { rules: ['counter'] } },
    });
    expect(tableDefinition(spec)).toBe(
      [
        'table inet capstan_unit {',
        '\tset blocked {',
        '\t\ttype ipv4_addr',
        '\t\tflags interval',
        '\t\telements = { 198.18.9.0/24 }',
        '\t}',
        '\tchain input {',
        '\t\ttype filter hook input priority 0; policy drop;',
        '\t\tip saddr @blocked drop',
        '\t}',
        '\tchain audit {',
        '\t\tcounter',
        '\t}',
        '}',
        '',
      ].join('\n'),
    );
  });

  it.each([
    ['tcp dport { 22, 80 } accept', true, null],
    ['meta comment "a } b" accept', true, null],
    ['accept }', true, /"\}" without its "\{"/],
    ['tcp dport { 22', true, /"\{" without its "\}"/],
    ['log prefix "x', true, /not closed/],
    ['chain a {\n\t# a comment with } in it\n\taccept\n}', false, null],
    ['chain a { include "/etc/passwd" }', false, /include/],
  ])('structure of %j (one rule: %s)', (text, single, problem) => {
    const found = structureProblem(text, single);
    if (problem === null) expect(found).toBeNull();
    else expect(found).toMatch(problem);
  });
});

describe('Firewall in a network namespace', () => {
  let ssh: TestHost;
  let local: TestHost;

  beforeAll(async () => {
    [ssh, local] = await Promise.all([openTestHost({ netns: 'nft-ssh', sshPort: 2222 }), openTestHost({ netns: 'nft-local' })]);
  });
  afterAll(async () => {
    await Promise.all([ssh?.cleanup(), local?.cleanup()]);
  });

  it('refuses at plan time a table that would drop the SSH port, naming table, host and port', async () => {
    const spec = firewall(inputChain('drop', ['ct state established,related accept', 'tcp dport 22 accept']));
    await expect(firewallProvider.read(ssh.handle, [spec], ctx)).rejects.toThrow(
      /refusing Firewall table inet capstan_unit on Host\/test .*: chain input has policy drop and no rule that accepts new connections to tcp port 2222, the port Capstan's SSH connection to this host uses.*force: true/,
    );
    expect(ssh.namespace!.run(['nft', 'list', 'tables'])).toBe('');
  });

  it('applies the same table with force: true', async () => {
    const spec = firewall({ ...inputChain('drop', ['tcp dport 22 accept']), force: true });
    await converge(firewallProvider, ssh.handle, spec);
    expect(ssh.namespace!.run(['nft', 'list', 'table', 'inet', 'capstan_unit'])).toMatch(/policy drop;/);
    await remove(firewallProvider, ssh.handle, spec);
    expect(ssh.namespace!.run(['nft', 'list', 'tables'])).toBe('');
  });

  it("takes the SSH port from the Host (the handle), never from a transport's description", async () => {
    expect(sshPortOf(ssh.handle)).toBe(2222);
    expect(sshPortOf(local.handle)).toBeNull();
    // A transport that merely describes itself like an SSH one does not make the port up.
    const described = await openTestHost({ netns: 'nft-desc', description: 'ssh root@198.18.0.1:2200' });
    try {
      expect(sshPortOf(described.handle)).toBeNull();
      const spec = firewall(inputChain('drop', ['tcp dport 2222 accept']));
      await converge(firewallProvider, described.handle, spec);
      await remove(firewallProvider, described.handle, spec);
    } finally {
      await described.cleanup();
    }
  });

  it('reads a batch of tables with two commands, whatever its size', async () => {
    local.recorder.reset();
    const lives = await firewallProvider.read(
      local.handle,
      [firewall(inputChain('drop', [])), firewall({ table: 'second', ...inputChain('accept', []) }), firewall({ family: 'ip', table: 'third', ruleset: 'chain c { }' })],
      ctx,
    );
    expect(lives).toEqual([null, null, null]);
    expect(local.recorder.execs.map((argv) => argv.slice(0, 5))).toEqual([
      ['nft', '-j', '-s', 'list', 'ruleset'],
      ['unshare', '--net', '--', 'nft', '-j'],
    ]);
    expect(await fs.readdir(local.real('/run/capstan')), 'scratch files are removed').toEqual([]);
  });

  it('names the table and the line nft refuses', async () => {
    const spec = firewall(inputChain('accept', ['ct state established accept', 'tcp dport 22 acept']));
    await expect(firewallProvider.read(local.handle, [spec], ctx)).rejects.toThrow(
      /nft refuses the ruleset of Firewall table inet capstan_unit on Host\/test .*line 5:\d+-\d+: Error: syntax error/s,
    );
  });

  it('explains that interfaces must be matched by name', async () => {
    await expect(firewallProvider.read(local.handle, [firewall(inputChain('accept', ['iif eth0 accept']))], ctx)).rejects.toThrow(
      /Interface does not exist.*iifname "eth0", not iif eth0/s,
    );
  });

  it('manages a table written as text, shows drift as lines, and leaves other tables alone', async () => {
    local.namespace!.run(['nft', 'add', 'table', 'inet', 'someone_else']);
    const spec = firewall({
      ruleset: ['chain input {', '\ttype filter hook input priority filter; policy accept;', '\ttcp dport {80,443} accept', '}'].join('\n'),
    });
    expect((await converge(firewallProvider, local.handle, spec)).diff.action).toBe('create');
    expect((await converge(firewallProvider, local.handle, spec, spec)).diff.action).toBe('noop');

    local.namespace!.run(['nft', 'insert', 'rule', 'inet', 'capstan_unit', 'input', 'tcp', 'dport', '9999', 'accept']);
    const [drifted] = await firewallProvider.read(local.handle, [spec], ctx);
    const diff = firewallProvider.diff(spec, drifted ?? null, spec);
    expect(diff.fields).toEqual([
      {
        path: 'chains.input',
        format: 'text',
        before: 'chain input {\n\ttype filter hook input priority 0; policy accept;\n\ttcp dport 9999 accept\n\ttcp dport { 80, 443 } accept\n}\n',
        after: 'chain input {\n\ttype filter hook input priority 0; policy accept;\n\ttcp dport { 80, 443 } accept\n}\n',
      },
    ]);
    await converge(firewallProvider, local.handle, spec, spec);
    expect((await converge(firewallProvider, local.handle, spec, spec)).diff.action).toBe('noop');
    await remove(firewallProvider, local.handle, spec);
    expect(local.namespace!.run(['nft', 'list', 'tables']).trim()).toBe('table inet someone_else');
  });

  it('shows unchanged rules as the user wrote them', async () => {
    const spec = firewall(inputChain('accept', ['tcp dport {80,443} accept']));
    await converge(firewallProvider, local.handle, spec);
    local.namespace!.run(['nft', 'add', 'rule', 'inet', 'capstan_unit', 'input', 'udp', 'dport', '53', 'accept']);
    const [drifted] = await firewallProvider.read(local.handle, [spec], ctx);
    const field = firewallProvider.diff(spec, drifted ?? null, spec).fields[0]!;
    expect(field.before).toBe('chain input {\n\ttype filter hook input priority 0; policy accept;\n\ttcp dport {80,443} accept\n\tudp dport 53 accept\n}\n');
    await remove(firewallProvider, local.handle, spec);
  });

  it('moves a table to a new name in one transaction', async () => {
    const before = firewall({ table: 'old_name', ...inputChain('accept', []) });
    const after = firewall({ table: 'new_name', ...inputChain('accept', []) });
    await converge(firewallProvider, local.handle, before);
    const { diff } = await converge(firewallProvider, local.handle, after, before);
    expect(diff.action).toBe('replace');
    expect(local.namespace!.run(['nft', 'list', 'tables'])).not.toMatch(/old_name/);
    expect(local.namespace!.run(['nft', 'list', 'tables'])).toMatch(/table inet new_name/);
  });
});
