/** Test support: tiny .deb packages built with `dpkg-deb --build` from a temp tree. */
import { execFile } from 'node:child_process';
import * as fs from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export interface DebDefinition {
  readonly name: string;
  readonly version: string;
  /** Files the package installs: absolute path → content. */
  readonly files?: Readonly<Record<string, string>>;
  readonly depends?: string;
  /** Files of `files` that are configuration files (left behind by a removal until purged). */
  readonly conffiles?: readonly string[];
}

/** Builds `<outDir>/<name>_<version>.deb` and returns its path. */
export async function buildDeb(outDir: string, deb: DebDefinition): Promise<string> {
  const tree = await fs.mkdtemp(join(outDir, `.build-${deb.name}-`));
  try {
    await fs.mkdir(join(tree, 'DEBIAN'), { recursive: true });
    const control = [
      `Package: ${deb.name}`,
      `Version: ${deb.version}`,
      'Architecture: all',
      'Maintainer: Capstan tests <tests@example.invalid>',
      ...(deb.depends ? [`Depends: ${deb.depends}`] : []),
      `Description: Capstan test package ${deb.name}`,
      '',
    ].join('\n');
    await fs.writeFile(join(tree, 'DEBIAN', 'control'), control);
    if (deb.conffiles?.length) await fs.writeFile(join(tree, 'DEBIAN', 'conffiles'), `${deb.conffiles.join('\n')}\n`);
    for (const [path, content] of Object.entries(deb.files ?? { [`/usr/share/${deb.name}/version`]: `${deb.version}\n` })) {
      await fs.mkdir(join(tree, dirname(path)), { recursive: true });
      await fs.writeFile(join(tree, path), content);
    }
    const out = join(outDir, `${deb.name}_${deb.version}.deb`);
    await run('dpkg-deb', ['--root-owner-group', '-Zgzip', '-z1', '--build', tree, out]);
    return out;
  } finally {
    await fs.rm(tree, { recursive: true, force: true });
  }
}

/** Runs dpkg against a test root's own database, behind the provider's back. */
export async function dpkgInRoot(root: string, args: readonly string[]): Promise<void> {
  await run('dpkg', [
    `--root=${root}`,
    `--admindir=${root}/var/lib/dpkg`,
    `--log=${root}/var/log/dpkg.log`,
    '--force-script-chrootless',
    '--force-not-root',
    ...args,
  ]);
}
