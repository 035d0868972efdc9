import * as fs from 'node:fs/promises';
import { runProviderConformance } from '../testing/conformance.js';
import { directoryProvider } from './directory.js';
import { fileProvider } from './file.js';
import { openSandbox } from './testing/sandbox.js';
import { symlinkProvider } from './symlink.js';

const connect = async () => {
  const sandbox = await openSandbox();
  return { handle: sandbox.handle, cleanup: sandbox.cleanup };
};

runProviderConformance({
  provider: fileProvider,
  connect,
  create: { path: '/etc/app/motd', content: 'hello\n', mode: '0644' },
  update: { path: '/etc/app/motd', content: 'hello\nworld\n', mode: '0600', owner: 65534, group: 65534 },
  invalidSpecs: [
    { spec: { path: 'etc/motd', content: 'x' }, message: /path must be absolute/ },
    { spec: { path: '/etc/../motd', content: 'x' }, message: /\.\./ },
    { spec: { path: '/etc/motd' }, message: /exactly one of content, source or template/ },
    { spec: { path: '/etc/motd', content: 'x', source: 'motd.txt' }, message: /exactly one of content, source/ },
    { spec: { path: '/etc/motd', content: 'x', mode: 644 }, message: /quoted octal string/ },
    { spec: { path: '/etc/motd', content: 'x', mode: '0999' }, message: /octal digits/ },
    { spec: { path: '/etc/motd', content: 'x', colour: 'blue' }, message: /colour/ },
  ],
  makeDrift: (handle, spec) => fs.writeFile(handle.realRoot + spec.path, 'tampered\n'),
  driftedField: 'content',
});

runProviderConformance({
  provider: directoryProvider,
  connect,
  create: { path: '/srv/app', mode: '0755' },
  update: { path: '/srv/app', mode: '2770', owner: 65534, group: 'nogroup' },
  invalidSpecs: [
    { spec: { path: '/srv/app/' }, message: /must not end with "\/"/ },
    { spec: { path: '/srv//app' }, message: /empty segments/ },
    { spec: { path: '/srv/./app' }, message: /"\." segments/ },
    { spec: { path: '/srv/app', owner: 'bad name!' }, message: /owner must be a user name/ },
    { spec: { path: '/srv/app', group: -1 }, message: /group id must be a whole number/ },
  ],
  makeDrift: (handle, spec) => fs.chmod(handle.realRoot + spec.path, 0o700),
  driftedField: 'mode',
});

runProviderConformance({
  provider: symlinkProvider,
  connect,
  create: { path: '/srv/current', target: 'releases/v1' },
  update: { path: '/srv/current', target: 'releases/v2', owner: 65534 },
  invalidSpecs: [
    { spec: { path: '/srv/current' }, message: /target/ },
    { spec: { path: '/srv/current', target: '' }, message: /target must not be empty/ },
    { spec: { path: '/srv/cur\0rent', target: 'x' }, message: /NUL/ },
  ],
  makeDrift: async (handle, spec) => {
    await fs.unlink(handle.realRoot + spec.path);
    await fs.symlink('/elsewhere', handle.realRoot + spec.path);
  },
  driftedField: 'target',
});

// The same life with the options of docs/hosts.md: a symbolic mode, backup and force.
runProviderConformance({
  name: 'File provider conformance (symbolic mode, backup, force)',
  provider: fileProvider,
  connect,
  create: { path: '/etc/app/app.conf', content: 'one\n', mode: 'u=rw,g=r,o=', backup: true, force: true },
  update: { path: '/etc/app/app.conf', content: 'two\n', mode: 'a+x', backup: true, force: true },
  invalidSpecs: [
    { spec: { path: '/etc/motd', content: 'x', mode: 'u+rwz' }, message: /symbolic mode/ },
    { spec: { path: '/etc/motd', content: 'x', mode: 'preserve' }, message: /needs source:/ },
    { spec: { path: '/etc/motd', state: 'absent', content: 'x' }, message: /content is for state: present/ },
  ],
  makeDrift: (handle, spec) => fs.chmod(handle.realRoot + spec.path, 0o600),
  driftedField: 'mode',
});

runProviderConformance({
  name: 'Directory provider conformance (symbolic mode, force)',
  provider: directoryProvider,
  connect,
  create: { path: '/srv/app', mode: 'u=rwx,g=rx,o=', force: true },
  update: { path: '/srv/app', mode: 'g+ws', force: true },
  invalidSpecs: [
    { spec: { path: '/srv/app', fileMode: '0644' }, message: /fileMode .* needs recurse: true/ },
    { spec: { path: '/srv/app', state: 'absent', mode: '0755' }, message: /mode is for state: present/ },
  ],
  makeDrift: (handle, spec) => fs.chmod(handle.realRoot + spec.path, 0o700),
  driftedField: 'mode',
});
