/**
 * The built CLI against a fleet of three real sshd hosts in network namespaces
 * (test/e2e/fleet/netns.ts): one spec targets `group:web`, every host converges,
 * the next plan is empty; then a host that goes down in the middle of an apply
 * fails its own resources only, while the others finish.
 */
import * as fs from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createFleet, type Fleet } from './fleet/netns.js';
import { assertBuilt, capstan, spawnCapstan, workspace, type Workspace } from './harness.js';

let fleet: Fleet;
let ws: Workspace;

beforeAll(async () => {
  assertBuilt();
  fleet = await createFleet({ size: 3 });
  ws = await workspace();
}, 60_000);
afterAll(async () => {
  await fleet?.destroy();
  await ws?.cleanup();
});

const hostsDoc = () => fleet.hosts.map((h) => fleet.hostDoc(h.index, { groups: ['web'] })).join('---\n');

describe('capstan over ssh, on a fleet of three hosts', () => {
  it('applies one spec to group:web on every host, then plans no change', async () => {
    await ws.write('hosts.yaml', hostsDoc());
    await ws.write(
      'app.yaml',
      [
        'kind: Directory\nname: app\ntarget: group:web\nspec: { path: /srv/app, mode: "0750", group: nogroup }\n',
        'kind: File\nname: motd\ntarget: group:web\nspec:\n  path: /srv/app/motd\n  content: "hello from capstan\\n"\n  mode: "0644"\n',
        'kind: File\nname: secret\ntarget: group:web\nspec:\n  path: /srv/app/token\n  content: "s3cr3t\\n"\n  mode: "0600"\n  owner: nobody\n  sensitive: true\n',
        'kind: Symlink\nname: current\ntarget: group:web\nspec: { path: /srv/current, target: app }\n',
      ].join('---\n'),
    );
    const applied = await capstan(['apply', ws.repo, '--yes', '--state', ws.state]);
    expect(applied.stderr).toBe('');
    expect(applied.exitCode).toBe(0);
    expect(applied.stdout).toMatch(/Apply complete .*: 12 created, 0 updated, 0 replaced, 0 deleted, 0 failed, 0 skipped/);
    expect(applied.stdout).not.toContain('s3cr3t');
    for (const h of fleet.hosts) {
      const app = path.join(h.root, 'srv/app');
      expect(await fs.readFile(path.join(app, 'motd'), 'utf8')).toBe('hello from capstan\n');
      const dir = await fs.stat(app);
      expect({ mode: dir.mode & 0o7777, gid: dir.gid }).toEqual({ mode: 0o750, gid: 65534 });
      const token = await fs.stat(path.join(app, 'token'));
      expect({ mode: token.mode & 0o7777, uid: token.uid }).toEqual({ mode: 0o600, uid: 65534 });
      expect(await fs.readlink(path.join(h.root, 'srv/current'))).toBe('app');
    }

    const again = await capstan(['plan', ws.repo, '--detailed-exitcode', '--state', ws.state]);
    expect(again.stderr).toBe('');
    expect(again.exitCode, again.stdout).toBe(0);
  });

  it('fails only the resources of a host that goes down mid-apply; the other hosts finish', async () => {
    const files = Array.from({ length: 15 }, (_, i) => `f${String(i).padStart(2, '0')}`);
    await ws.write(
      'many.yaml',
      files.map((f) => `kind: File\nname: ${f}\ntarget: group:web\nspec:\n  path: /srv/many/${f}\n  content: "${f}\\n"\n`).join('---\n'),
    );
    const victim = fleet.hosts[2]!;
    const apply = spawnCapstan(['apply', ws.repo, '--yes', '--parallelism', '2', '--state', ws.state]);
    // Take the host down as soon as the apply has written its first file there.
    const deadline = Date.now() + 60_000;
    while ((await fs.readdir(path.join(victim.root, 'srv/many')).catch(() => [])).length === 0) {
      if (Date.now() > deadline || apply.exitCode !== null) throw new Error('the apply never reached the third host');
      await new Promise((r) => setTimeout(r, 10));
    }
    await fleet.down(victim.index);
    const result = await apply;

    expect(result.exitCode).toBe(1);
    const stderr = String(result.stderr);
    const failed = [...stderr.matchAll(/^ {2}(\S+): (.*)$/gm)].map((m) => ({ address: m[1]!, error: m[2]! }));
    expect(failed.length).toBeGreaterThan(0);
    expect(failed.filter((f) => !f.address.endsWith(`@${victim.name}`)), stderr).toEqual([]);
    for (const f of failed) expect(f.error).toMatch(new RegExp(`Host/${victim.name} \\(ssh root@${victim.address.replaceAll('.', '\\.')}:22\\)`));
    for (const h of fleet.hosts.slice(0, 2)) {
      expect((await fs.readdir(path.join(h.root, 'srv/many'))).sort()).toEqual(files);
    }
    // What reached the dead host before it went down is whole. A write cut off by the crash can
    // only leave its temporary sibling behind, never a partial file under the real name.
    for (const name of await fs.readdir(path.join(victim.root, 'srv/many'))) {
      if (name.startsWith('.')) {
        expect(name).toMatch(/^\.f\d\d\.capstan-[0-9a-f]{12}\.tmp$/);
        continue;
      }
      expect(name).toMatch(/^f\d\d$/);
      expect(await fs.readFile(path.join(victim.root, 'srv/many', name), 'utf8')).toBe(`${name}\n`);
    }
  }, 90_000);
});
