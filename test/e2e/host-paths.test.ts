/**
 * The path kinds through the built CLI on a local host with a sandbox root:
 * state: absent, refusing to replace what Capstan did not create, force,
 * backup and symbolic modes (docs/hosts.md).
 */
import { existsSync } from 'node:fs';
import { lstat, mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { assertBuilt, capstan, hostDoc, workspace, type Workspace } from './harness.js';

// Each test runs the CLI several times; on a loaded 2-core machine one call can take seconds.
vi.setConfig({ testTimeout: 240_000 });

let ws: Workspace;
beforeAll(assertBuilt);
afterEach(async () => ws?.cleanup());

const plan = () => capstan(['plan', ws.repo, '--state', ws.state, '--detailed-exitcode']);
const apply = () => capstan(['apply', ws.repo, '--state', ws.state, '--yes']);

/** A stack of one local Host, web-1, and `docs` in app.yaml. */
async function writeStack(docs: readonly string[]): Promise<void> {
  await ws.write('hosts.yaml', hostDoc('web-1', ws.root));
  await ws.write('app.yaml', docs.join('---\n'));
}

describe('File, Directory and Symlink on a local host', () => {
  it('state: absent removes a default site Capstan did not create; a non-empty directory needs recurse: true', async () => {
    ws = await workspace();
    await mkdir(path.join(ws.root, 'etc/nginx/sites-enabled'), { recursive: true });
    await mkdir(path.join(ws.root, 'var/www/html/assets'), { recursive: true });
    await writeFile(path.join(ws.root, 'etc/nginx/sites-available-default'), 'server {}\n');
    await writeFile(path.join(ws.root, 'var/www/html/index.html'), '<h1>It works</h1>\n');
    await writeFile(path.join(ws.root, 'var/www/html/assets/logo.png'), 'png');
    await writeFile(path.join(ws.root, 'etc/motd'), 'Debian\n');
    const { symlink } = await import('node:fs/promises');
    await symlink('../sites-available-default', path.join(ws.root, 'etc/nginx/sites-enabled/default'));
    await ws.write('hosts.yaml', hostDoc('web-1', ws.root));
    const spec = (recurse: boolean) =>
      [
        'kind: Symlink\nname: default-site\ntarget: web-1\nspec: { path: /etc/nginx/sites-enabled/default, state: absent }\n',
        'kind: File\nname: motd\ntarget: web-1\nspec: { path: /etc/motd, state: absent }\n',
        `kind: Directory\nname: html\ntarget: web-1\nspec:\n  path: /var/www/html\n  state: absent\n${recurse ? '  recurse: true\n' : ''}`,
      ].join('---\n');
    await ws.write('web.yaml', spec(false));

    const refused = await plan();
    expect(refused.exitCode).toBe(1);
    expect(refused.stderr).toMatch(/web\.yaml:\d+:\d+: Directory\/html: \/var\/www\/html is not empty \(3 objects below \/var\/www\/html: \/var\/www\/html\/assets, \/var\/www\/html\/assets\/logo\.png, \/var\/www\/html\/index\.html\): set recurse: true/);
    expect((await apply()).exitCode).not.toBe(0);
    expect(existsSync(path.join(ws.root, 'etc/motd'))).toBe(true);

    await ws.write('web.yaml', spec(true));
    const listed = await plan();
    expect(listed.exitCode).toBe(2);
    expect(listed.stdout).toContain('removes /var/www/html and the 3 objects below it');
    expect(listed.stdout).toContain('removes the symbolic link /etc/nginx/sites-enabled/default -> ../sites-available-default');
    const applied = await apply();
    expect(applied.stderr).toBe('');
    expect(applied.exitCode).toBe(0);
    expect(existsSync(path.join(ws.root, 'var/www/html'))).toBe(false);
    expect(existsSync(path.join(ws.root, 'etc/motd'))).toBe(false);
    await expect(lstat(path.join(ws.root, 'etc/nginx/sites-enabled/default'))).rejects.toMatchObject({ code: 'ENOENT' });
    expect(await readFile(path.join(ws.root, 'etc/nginx/sites-available-default'), 'utf8')).toBe('server {}\n');
    expect(await readdir(path.join(ws.root, 'var/www'))).toEqual([]);
    const again = await plan();
    expect(again.stdout).toContain('No changes');
    expect(again.exitCode).toBe(0);
  });

  it('refuses to replace a file with data by a Directory or a Symlink without force: true, with FILE:LINE:COL, changing nothing', async () => {
    ws = await workspace();
    await mkdir(path.join(ws.root, 'srv'), { recursive: true });
    await writeFile(path.join(ws.root, 'srv/app'), 'precious data\n');
    await writeFile(path.join(ws.root, 'srv/current'), 'more data\n');
    await writeStack([
      'kind: Directory\nname: app\ntarget: web-1\nspec:\n  path: /srv/app\n',
      'kind: Symlink\nname: current\ntarget: web-1\nspec:\n  path: /srv/current\n  target: releases/v1\n',
    ]);
    const refused = await plan();
    expect(refused.exitCode).toBe(1);
    expect(refused.stderr).toContain('app.yaml:5:9: Directory/app: /srv/app is a regular file, not a directory, and Capstan did not create it: refusing to replace it (set force: true to replace it');
    expect(refused.stderr).toMatch(/app\.yaml:11:9: Symlink\/current: \/srv\/current is a regular file, not a symbolic link/);
    expect((await apply()).exitCode).not.toBe(0);
    expect(await readFile(path.join(ws.root, 'srv/app'), 'utf8')).toBe('precious data\n');
    expect(await readFile(path.join(ws.root, 'srv/current'), 'utf8')).toBe('more data\n');

    await ws.write('app.yaml', 'kind: Directory\nname: app\ntarget: web-1\nspec:\n  path: /srv/app\n  force: true\n');
    expect((await apply()).exitCode).toBe(0);
    expect((await lstat(path.join(ws.root, 'srv/app'))).isDirectory()).toBe(true);
  });

  it('force: false seeds a file once; backup: true keeps what it replaces; symbolic modes plan as octal', async () => {
    ws = await workspace();
    await mkdir(path.join(ws.root, 'etc/app'), { recursive: true });
    await writeFile(path.join(ws.root, 'etc/app/app.conf'), 'hand edited\n');
    await writeStack([
      'kind: File\nname: seed\ntarget: web-1\nspec: { path: /etc/app/state.json, content: "{}\\n", force: false }\n',
      'kind: File\nname: conf\ntarget: web-1\nspec: { path: /etc/app/app.conf, content: "managed\\n", backup: true, mode: "u=rw,g=r,o=" }\n',
      'kind: File\nname: tool\ntarget: web-1\nspec: { path: /usr/local/bin/tool, content: "#!/bin/sh\\n", mode: "a+x" }\n',
    ]);
    const first = await plan();
    expect(first.stdout).toMatch(/mode: "0644" -> "0640"/);
    expect(first.stdout).toMatch(/File\/tool[^]*\+ mode: "0755"/);
    const applied = await apply();
    expect(applied.exitCode).toBe(0);
    const backups = (await readdir(path.join(ws.root, 'etc/app'))).filter((n) => n.startsWith('app.conf.'));
    expect(backups).toHaveLength(1);
    expect(backups[0]).toMatch(/^app\.conf\.\d{8}T\d{6}\.\d{3}Z~$/);
    // The backup's path is in the apply output and in the run's history.
    const note = `File/conf: kept the replaced content of /etc/app/app.conf as /etc/app/${backups[0]!}`;
    expect(applied.stdout).toContain(note);
    expect((await capstan(['history', ws.repo, '--state', ws.state])).stdout).toContain(note);
    const history = JSON.parse((await capstan(['history', ws.repo, '--state', ws.state, '--json'])).stdout) as { notes?: { address: string; message: string }[] }[];
    expect(history[0]!.notes).toEqual([{ address: 'File/conf', message: `kept the replaced content of /etc/app/app.conf as /etc/app/${backups[0]!}` }]);
    expect(await readFile(path.join(ws.root, 'etc/app', backups[0]!), 'utf8')).toBe('hand edited\n');
    expect((await stat(path.join(ws.root, 'etc/app/app.conf'))).mode & 0o7777).toBe(0o640);
    expect((await stat(path.join(ws.root, 'usr/local/bin/tool'))).mode & 0o7777).toBe(0o755);

    // The service owns the seeded file now: its changes are not undone.
    await writeFile(path.join(ws.root, 'etc/app/state.json'), '{"counter":3}\n');
    const again = await plan();
    expect(again.stdout).toContain('No changes');
    expect(again.exitCode).toBe(0);

    await ws.write('bad.yaml', 'kind: File\nname: bad\ntarget: web-1\nspec:\n  path: /etc/bad\n  content: x\n  mode: "u+rwz"\n');
    const bad = await capstan(['validate', ws.repo]);
    expect(bad.exitCode).toBe(1);
    expect(bad.stderr).toMatch(/bad\.yaml:7:9: .*mode must be 3 or 4 octal digits .* not "u\+rwz"/);
  });

  it('Directory recurse: true sets owner, group and modes below; the plan lists what differs, then nothing', async () => {
    ws = await workspace();
    await mkdir(path.join(ws.root, 'srv/www/static'), { recursive: true });
    await writeFile(path.join(ws.root, 'srv/www/static/site.css'), 'body {}\n', { mode: 0o600 });
    await writeStack(['kind: Directory\nname: www\ntarget: web-1\nspec: { path: /srv/www, recurse: true, group: 65534, mode: "u=rwx,g=rxs,o=", fileMode: "u=rw,g=r,o=" }\n']);
    const planned = await plan();
    expect(planned.exitCode).toBe(2);
    expect(planned.stdout).toContain('recurse: "2 of 2 below differ: /srv/www/static, /srv/www/static/site.css" -> "group 65534, mode 2750, files 0640"');
    expect((await apply()).exitCode).toBe(0);
    const css = await stat(path.join(ws.root, 'srv/www/static/site.css'));
    expect([css.mode & 0o7777, css.gid]).toEqual([0o640, 65534]);
    expect((await stat(path.join(ws.root, 'srv/www/static'))).mode & 0o7777).toBe(0o2750);
    const again = await plan();
    expect(again.stdout).toContain('No changes');
    expect(again.exitCode).toBe(0);
  });
});

describe('Directory source: DIR/ on a local host', () => {
  it('syncs a tree from the repository: created, updated, purged, then no changes; a link out of the repository is refused', async () => {
    ws = await workspace();
    await ws.write('files/site/index.html', '<h1>v1</h1>\n');
    await ws.write('files/site/css/site.css', 'body {}\n');
    await writeStack(['kind: Directory\nname: site\ntarget: web-1\nspec: { path: /srv/www, source: files/site/, purge: true, fileMode: "0640" }\n']);
    const first = await plan();
    expect(first.exitCode).toBe(2);
    expect(first.stdout).toContain('source.create: "2: /srv/www/css/site.css, /srv/www/index.html"');
    expect((await apply()).exitCode).toBe(0);
    expect(await readFile(path.join(ws.root, 'srv/www/index.html'), 'utf8')).toBe('<h1>v1</h1>\n');
    expect((await stat(path.join(ws.root, 'srv/www/css/site.css'))).mode & 0o7777).toBe(0o640);
    expect((await plan()).stdout).toContain('No changes');

    await ws.write('files/site/index.html', '<h1>v2</h1>\n');
    await writeFile(path.join(ws.root, 'srv/www/stale.html'), 'old');
    await mkdir(path.join(ws.root, 'srv/www/old/deep'), { recursive: true });
    const second = await plan();
    expect(second.stdout).toContain('source.update: "1: /srv/www/index.html"');
    expect(second.stdout).toContain('source.purge: "2: /srv/www/old, /srv/www/stale.html"');
    expect((await apply()).exitCode).toBe(0);
    expect(await readFile(path.join(ws.root, 'srv/www/index.html'), 'utf8')).toBe('<h1>v2</h1>\n');
    expect((await readdir(path.join(ws.root, 'srv/www'))).sort()).toEqual(['css', 'index.html']);
    const again = await plan();
    expect(again.stdout).toContain('No changes');
    expect(again.exitCode).toBe(0);

    const { symlink } = await import('node:fs/promises');
    await symlink('/etc', path.join(ws.repo, 'files/site/etc'));
    const refused = await capstan(['validate', ws.repo]);
    expect(refused.exitCode).toBe(1);
    expect(refused.stderr).toMatch(/app\.yaml:\d+:\d+: Directory\/site: cannot read source files\/site\/: .*files\/site\/etc is a symbolic link/);
  });
});
