import { writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import path from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { execa } from 'execa';
import { assertBuilt, ageIdentity, capstan, fileDoc, freePort, git, hostDoc, workspace, type Workspace } from './harness.js';

beforeAll(assertBuilt);

const BANNER = 'OFFLINE PLAN: compared with the last recorded state, not the live hosts; drift is not visible';

let ws: Workspace | undefined;
afterEach(async () => {
  await ws?.cleanup();
  ws = undefined;
});

describe('capstan plan --offline', () => {
  it('plans a Host over SSH and a PostgresServer that nobody answers for, without trying to connect', async () => {
    ws = await workspace();
    const [sshPort, pgPort] = [await freePort(), await freePort()];
    await ws.write('known_hosts', '');
    await ws.write(
      'hosts.yaml',
      `kind: Host\nname: far\nspec:\n  transport: ssh\n  address: 127.0.0.1\n  port: ${sshPort}\n  knownHostsFile: known_hosts\n`,
    );
    await ws.write('files.yaml', fileDoc('motd', 'far', { path: '/etc/motd', content: 'hello\n' }));
    await ws.write(
      'db.yaml',
      `kind: PostgresServer\nname: db\nspec: { host: 127.0.0.1, port: ${pgPort}, user: postgres, sslmode: disable }\n---\nkind: PostgresRole\nname: app\ntarget: db\nspec: { name: app, login: true }\n`,
    );

    // Online, both targets are unreachable: the plan fails.
    const online = await capstan(['plan', ws.repo, '--state', ws.state]);
    expect(online.exitCode).toBe(1);
    expect(online.stderr).toContain('cannot reach');

    // From here on something listens on both ports and counts every connection: offline, none may come.
    let connections = 0;
    const listeners: Server[] = [];
    for (const port of [sshPort, pgPort]) {
      const server = createServer((socket) => {
        connections += 1;
        socket.destroy();
      });
      await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
      listeners.push(server);
    }
    const text = await capstan(['plan', ws.repo, '--state', ws.state, '--offline']);
    expect(text.exitCode, text.stderr).toBe(0);
    expect(text.stdout.split('\n')[0]).toBe(BANNER);
    expect(text.stdout).toContain('There is no recorded state yet: every resource shows as created.');
    expect(text.stdout).toMatch(/\+ File\/motd/);
    expect(text.stdout).toMatch(/\+ PostgresRole\/app/);
    expect(text.stderr).not.toContain('cannot reach');

    const json = await capstan(['plan', ws.repo, '--state', ws.state, '--offline', '--json']);
    expect(json.exitCode, json.stderr).toBe(0);
    const plan = JSON.parse(json.stdout) as { offline?: boolean; changes: { address: string; action: string }[] };
    expect(plan.offline).toBe(true);
    expect(plan.changes.map((c) => `${c.action} ${c.address}`)).toEqual(['create File/motd', 'create PostgresRole/app']);
    for (const server of listeners) await new Promise((resolve) => server.close(resolve));
    expect(connections).toBe(0);
  }, 120_000);

  it('shows what the spec changed since the last apply and not drift, and a saved offline plan is refused by apply', async () => {
    ws = await workspace();
    await ws.write('hosts.yaml', hostDoc('web-1', ws.root));
    await ws.write('a.yaml', fileDoc('a', 'web-1', { path: '/a', content: 'one\n' }));
    await ws.write('b.yaml', fileDoc('b', 'web-1', { path: '/b', content: 'two\n' }));
    const applied = await capstan(['apply', ws.repo, '--state', ws.state, '--yes']);
    expect(applied.exitCode, applied.stderr).toBe(0);

    await ws.write('a.yaml', fileDoc('a', 'web-1', { path: '/a', content: 'one, changed\n' }));
    await writeFile(path.join(ws.root, 'b'), 'drifted\n');
    const saved = path.join(ws.repo, '..', 'offline.json');
    const r = await capstan(['plan', ws.repo, '--state', ws.state, '--offline', '--out', saved, '--json']);
    expect(r.exitCode, r.stderr).toBe(0);
    const plan = JSON.parse(r.stdout) as { offline?: boolean; changes: { address: string; action: string }[] };
    expect(plan.offline).toBe(true);
    expect(plan.changes.map((c) => `${c.action} ${c.address}`)).toEqual(['update File/a', 'noop File/b']);

    const refused = await capstan(['apply', ws.repo, '--state', ws.state, '--plan', saved]);
    expect(refused.exitCode).toBe(1);
    expect(refused.stderr).toContain('made offline');
  }, 120_000);

  it('without an age identity leaves secrets encrypted: unknown and taken as unchanged, said so; --base still sees a re-encrypted file', async () => {
    ws = await workspace();
    const identity = await ageIdentity(path.dirname(ws.repo));
    const PLAIN = 'offline-plan-secret-4711';
    const encrypt = async () => {
      await execa('age', ['-r', identity.recipient, '-o', path.join(ws!.repo, 'motd.age')], { input: PLAIN });
    };
    await encrypt();
    await ws.write('hosts.yaml', hostDoc('web-1', ws.root));
    await ws.write('s.yaml', 'kind: File\nname: s\ntarget: web-1\nspec:\n  path: /s\n  content: { secret: motd.age }\n');
    await ws.write('p.yaml', fileDoc('p', 'web-1', { path: '/p', content: 'one\n' }));
    const applied = await capstan(['apply', ws.repo, '--state', ws.state, '--yes', '--identity', identity.file]);
    expect(applied.exitCode, applied.stderr).toBe(0);
    await git(ws.repo, 'init', '-q');
    await git(ws.repo, 'add', '-A');
    await git(ws.repo, 'commit', '-q', '-m', 'applied');
    const base = (await git(ws.repo, 'rev-parse', 'HEAD')).trim();

    // Without --offline and without an identity, the plan fails as always.
    const online = await capstan(['plan', ws.repo, '--state', ws.state]);
    expect(online.exitCode).toBe(1);

    await ws.write('p.yaml', fileDoc('p', 'web-1', { path: '/p', content: 'two\n' }));
    const text = await capstan(['plan', ws.repo, '--state', ws.state, '--offline']);
    expect(text.exitCode, text.stderr).toBe(0);
    expect(text.stdout).toContain(BANNER);
    expect(text.stdout).toContain('no age identity: the secrets of 1 resource(s) were not decrypted');
    const json = await capstan(['plan', ws.repo, '--state', ws.state, '--offline', '--json']);
    const plan = JSON.parse(json.stdout) as { changes: { address: string; action: string; reason?: string }[] };
    expect(plan.changes.map((c) => `${c.action} ${c.address}`)).toEqual(['update File/p', 'noop File/s']);
    expect(plan.changes[1]!.reason).toContain('not decrypted');
    for (const out of [text.stdout, text.stderr, json.stdout, json.stderr]) expect(out).not.toContain(PLAIN);

    // A re-encrypted file (same value, new ciphertext) is a changed file: --base plans it, without decrypting.
    await encrypt();
    await git(ws.repo, 'add', '-A');
    await git(ws.repo, 'commit', '-q', '-m', 'rotate');
    const scoped = await capstan(['plan', ws.repo, '--state', ws.state, '--offline', '--base', base, '--json']);
    expect(scoped.exitCode, scoped.stderr).toBe(0);
    const narrowed = JSON.parse(scoped.stdout) as { scope: { changed: number; skipped: number }; changes: { address: string }[] };
    expect(narrowed.scope).toMatchObject({ changed: 2, skipped: 0 });
    expect(scoped.stdout).not.toContain(PLAIN);
  }, 120_000);
});
