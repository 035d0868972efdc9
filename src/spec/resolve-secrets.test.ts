import { generateIdentity } from 'age-encryption';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { formatDiagnostic } from '../diag/diagnostic.js';
import { defaultRegistry } from '../providers/index.js';
import { encryptAge, recipientOf } from '../secrets/age-file.js';
import { Keyring } from '../secrets/keyring.js';
import { isSensitive, type Sensitive } from '../secrets/sensitive.js';
import { loadStack } from './load.js';

const SECRET = 'correct horse battery staple';
let identity: string;
let recipient: string;
let otherIdentity: string;
let dir: string;

beforeAll(async () => {
  identity = await generateIdentity();
  otherIdentity = await generateIdentity();
  recipient = await recipientOf(identity);
});
beforeEach(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'capstan-secrets-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function write(rel: string, data: string | Uint8Array): Promise<void> {
  await mkdir(path.dirname(path.join(dir, rel)), { recursive: true });
  await writeFile(path.join(dir, rel), data);
}

const host = 'kind: Host\nname: h\nspec: { transport: local, root: /tmp/capstan-never-written }\n---\n';
const fileWith = (content: string) => `${host}kind: File\nname: f\ntarget: h\nspec:\n  path: /etc/x\n  content: ${content}\n`;

function keyring(key: string | undefined): Keyring {
  return new Keyring(key === undefined ? undefined : { keys: [key], origin: 'test' });
}

async function load(key: string | null = identity) {
  return loadStack(dir, defaultRegistry(), { keyring: keyring(key ?? undefined) });
}

const messages = (s: Awaited<ReturnType<typeof load>>) => s.diagnostics.map(formatDiagnostic);

describe('{ secret: PATH }', () => {
  it('becomes a Sensitive the schema accepts; the spec hash covers its digest, not its value', async () => {
    await write('secrets/db.age', await encryptAge(Buffer.from(SECRET), [recipient]));
    await write('stack/app.yaml', fileWith('{ secret: ../secrets/db.age }'));
    const stack = await load();
    expect(messages(stack)).toEqual([]);
    const content = (stack.resources[0]!.spec as { content: Sensitive<string> }).content;
    expect(isSensitive(content)).toBe(true);
    expect(content.reveal()).toBe(SECRET);
    expect(JSON.stringify(stack.resources)).not.toContain(SECRET);

    const again = await load();
    expect(again.specHash).toBe(stack.specHash);
    await write('secrets/db.age', await encryptAge(Buffer.from('another value'), [recipient]));
    expect((await load()).specHash).not.toBe(stack.specHash);
  });

  it('without an identity, with the wrong one, damaged, truncated, missing, outside: an error at the reference naming the path', async () => {
    const good = await encryptAge(Buffer.from(SECRET), [recipient], { armor: false });
    await write('ok.age', good);
    await write('short.age', good.subarray(0, good.length - 9));
    await write('junk.age', 'not age at all');
    await write('app.yaml', fileWith('{ secret: ok.age }'));

    const cases: [string | null, string, RegExp][] = [
      [null, 'ok.age', /app\.yaml:10:12: File\/f: cannot use secret ok\.age: no age identity/],
      [otherIdentity, 'ok.age', /app\.yaml:10:12: File\/f: cannot use secret ok\.age: the identity given is not one of the file's recipients/],
      [identity, 'short.age', /app\.yaml:10:12: File\/f: cannot use secret short\.age: the age file is damaged or truncated/],
      [identity, 'junk.age', /cannot use secret junk\.age: not an age file/],
      [identity, 'missing.age', /cannot use secret missing\.age: cannot read "missing\.age": no such file/],
      [identity, '../outside.age', /cannot use secret \.\.\/outside\.age: .*leaves the repository/],
    ];
    for (const [key, file, expected] of cases) {
      await write('app.yaml', fileWith(`{ secret: ${file} }`));
      const stack = await load(key);
      expect(messages(stack).join('\n')).toMatch(expected);
      // Nothing can be planned from it: the File is not a resource of the stack.
      expect(stack.resources).toEqual([]);
    }
  });

  it('in a field that does not take secrets: a diagnostic that says so', async () => {
    await write('ok.age', await encryptAge(Buffer.from('/etc/x'), [recipient]));
    await write('app.yaml', `${host}kind: File\nname: f\ntarget: h\nspec:\n  path: { secret: ok.age }\n  content: hi\n`);
    const stack = await load();
    expect(messages(stack).join('\n')).toMatch(/app\.yaml:9:9: File\/f: spec\.path does not take a secret \(\{ secret: ok\.age \}\)/);
  });

  describe('in vars (template variables)', () => {
    const templated = (hostVars: string, fileExtra = '') =>
      `kind: Host\nname: h\nspec:\n  transport: local\n  root: /tmp/capstan-never-written\n  vars: ${hostVars}\n---\n` +
      `kind: File\nname: conf\ntarget: h\nspec:\n  path: /etc/app.conf\n  template: app.liquid\n${fileExtra}` +
      `---\nkind: File\nname: motd\ntarget: h\nspec:\n  path: /etc/motd\n  template: motd.liquid\n`;
    beforeEach(async () => {
      await write('ok.age', await encryptAge(Buffer.from(SECRET), [recipient]));
      await write('app.liquid', 'password = {{ db.password }}\n');
      await write('motd.liquid', 'hello {{ host.name }}\n');
    });
    const contentOf = (stack: Awaited<ReturnType<typeof load>>, name: string) => stack.resources.find((r) => r.name === name)!.spec as { content: unknown };

    it('a template that reads a secret var renders it, and its output is sealed; one that does not stays plain', async () => {
      await write('app.yaml', templated('{ db: { password: { secret: ok.age } } }'));
      const stack = await load();
      expect(messages(stack)).toEqual([]);
      const conf = contentOf(stack, 'conf').content;
      expect(isSensitive(conf)).toBe(true);
      expect((conf as Sensitive<string>).reveal()).toBe(`password = ${SECRET}\n`);
      expect(contentOf(stack, 'motd').content).toBe('hello h\n');
      expect(JSON.stringify(stack)).not.toContain(SECRET);
    });

    it('from a HostGroup, for every member', async () => {
      await write(
        'app.yaml',
        `kind: HostGroup\nname: db\nspec:\n  vars: { db: { password: { secret: ok.age } } }\n---\n` +
          ['a', 'b'].map((h) => `kind: Host\nname: ${h}\nspec: { transport: local, root: /tmp/capstan-never-written-${h}, groups: [db] }\n---\n`).join('') +
          `kind: File\nname: conf\ntarget: group:db\nspec:\n  path: /etc/app.conf\n  template: app.liquid\n`,
      );
      const stack = await load();
      expect(messages(stack)).toEqual([]);
      const files = stack.resources.filter((r) => r.kind === 'File');
      expect(files.map((r) => r.address).sort()).toEqual(['File/conf@a', 'File/conf@b']);
      for (const f of files) expect((f.spec as { content: Sensitive<string> }).content.reveal()).toBe(`password = ${SECRET}\n`);
      expect(JSON.stringify(stack)).not.toContain(SECRET);
    });

    it('a health check cannot read one (its URL is shown in plans and logs)', async () => {
      await write(
        'app.yaml',
        `kind: HostGroup\nname: db\nspec:\n  vars: { db: { password: { secret: ok.age } } }\n  rollout: { healthCheck: { http: { url: "http://x/?p={{ db.password }}" } } }\n---\n` +
          `kind: Host\nname: a\nspec: { transport: local, root: /tmp/capstan-never-written, groups: [db] }\n`,
      );
      const stack = await load();
      expect(messages(stack).join('\n')).toMatch(/a health check cannot read a secret variable \(host a\)/);
      expect(messages(stack).join('\n')).not.toContain(SECRET);
    });

    it('sensitive: false on a template that reads one is an error at the field; the File\'s own secret vars too', async () => {
      await write('app.yaml', templated('{ db: { password: { secret: ok.age } } }', '  sensitive: false\n'));
      let stack = await load();
      expect(messages(stack).join('\n')).toMatch(/app\.yaml:14:14: File\/conf: template app\.liquid reads a secret variable: .*cannot be sensitive: false/);
      expect(messages(stack).join('\n')).not.toContain(SECRET);
      await write('app.yaml', templated('{}', '  vars: { db: { password: { secret: ok.age } } }\n  sensitive: false\n'));
      stack = await load();
      expect(messages(stack).join('\n')).toMatch(/app\.yaml:15:14: .*vars hold a secret: .*cannot be sensitive: false/);
    });

    it('a Liquid error in a template with a secret var does not quote the value', async () => {
      // A lookup by the secret: LiquidJS names the variable it did not find, value and all.
      await write('app.liquid', 'x = {{ db[db.password] }}\n');
      await write('app.yaml', templated('{ db: { password: { secret: ok.age } } }'));
      const stack = await load();
      expect(messages(stack).join('\n')).toMatch(/app\.liquid:1:8: undefined variable "db\.\(sensitive\)"/);
      expect(JSON.stringify(stack.diagnostics)).not.toContain(SECRET);
    });
  });

  it('inline sensitive: true content is sealed too, and keyed by the identity', async () => {
    await write('app.yaml', `${host}kind: File\nname: f\ntarget: h\nspec:\n  path: /etc/x\n  content: "${SECRET}"\n  sensitive: true\n`);
    const stack = await load();
    expect(messages(stack)).toEqual([]);
    const content = (stack.resources[0]!.spec as { content: unknown }).content;
    expect(isSensitive(content)).toBe(true);
    expect(JSON.stringify(stack.resources)).not.toContain(SECRET);
    expect((await load(otherIdentity)).specHash).not.toBe(stack.specHash);
  });

  it('Exec environment values and a Host passphrase take secrets', async () => {
    await write('ok.age', await encryptAge(Buffer.from(SECRET), [recipient]));
    await write(
      'app.yaml',
      `kind: Host\nname: h\nspec: { transport: ssh, address: 127.0.0.1, identityFile: key, passphrase: { secret: ok.age } }\n---\n` +
        `kind: Exec\nname: e\ntarget: h\nspec:\n  command: [/bin/true]\n  environment: { TOKEN: { secret: ok.age }, PLAIN: x }\n`,
    );
    const stack = await load();
    expect(messages(stack)).toEqual([]);
    expect(isSensitive((stack.targets[0]!.spec as { passphrase: unknown }).passphrase)).toBe(true);
    expect(isSensitive((stack.resources[0]!.spec as { environment: Record<string, unknown> }).environment['TOKEN'])).toBe(true);
    expect(JSON.stringify([stack.targets, stack.resources])).not.toContain(SECRET);
  });
});
