import * as fs from 'node:fs/promises';
import { runProviderConformance } from '../testing/conformance.js';
import { groupProvider } from './group.js';
import { userProvider } from './user.js';
import { populateAccounts } from './testing/accounts.js';
import { openTestHost } from './testing/hosts.js';

const connect = async () => {
  const host = await openTestHost();
  await populateAccounts(host.root);
  // Groups the user specs name, created behind the providers' back.
  await fs.appendFile(host.real('/etc/group'), 'staff:x:50:\nadm:x:4:\nops:x:2000:\n');
  await fs.appendFile(host.real('/etc/gshadow'), 'staff:*::\nadm:*::\nops:*::\n');
  return { handle: host.handle, cleanup: host.cleanup };
};

runProviderConformance({
  provider: userProvider,
  connect,
  create: { name: 'alice', uid: 2001, group: 'ops', appendGroups: false, removeHome: false, shell: '/bin/sh', comment: 'Alice', authorizedKeys: ['ssh-ed25519 AAAAC3Nza alice@laptop'] },
  update: {
    name: 'alice',
    uid: 2001,
    appendGroups: false,
    removeHome: false,
    group: 'ops',
    groups: ['staff', 'adm'],
    shell: '/bin/bash',
    comment: 'Alice Liddell',
    authorizedKeys: ['ssh-ed25519 AAAAC3Nza alice@laptop', 'ssh-ed25519 AAAAC3Nzb alice@phone'],
  },
  invalidSpecs: [
    { spec: { name: 'Alice' }, message: /lowercase letter/ },
    { spec: { name: '-oops' }, message: /lowercase letter/ },
    { spec: { name: 'alice', uid: -1 }, message: /uid must be from 0/ },
    { spec: { name: 'alice', uid: 1.5 }, message: /uid must be a whole number/ },
    { spec: { name: 'alice', shell: 'bash' }, message: /shell must be an absolute path/ },
    { spec: { name: 'alice', comment: 'a:b' }, message: /comment must not contain ":"/ },
    { spec: { name: 'alice', home: '/home/../etc' }, message: /\.\./ },
    { spec: { name: 'alice', authorizedKeys: ['ssh-ed25519 AAA\nssh-rsa BBB'] }, message: /one line/ },
    { spec: { name: 'alice', groups: 'staff' }, message: /groups must be a list/ },
  ],
  // Someone adds a key by hand.
  makeDrift: (handle) => fs.appendFile(`${handle.realRoot}/home/alice/.ssh/authorized_keys`, 'ssh-rsa AAAAB3 intruder\n'),
  driftedField: 'authorizedKeys',
});

runProviderConformance({
  provider: groupProvider,
  connect,
  create: { name: 'deploy', nonUnique: false, force: false },
  update: { name: 'deploy', gid: 2500, nonUnique: false, force: false },
  invalidSpecs: [
    { spec: { name: 'Deploy' }, message: /lowercase letter/ },
    { spec: { name: 'deploy', gid: 'x' }, message: /gid must be a number/ },
    { spec: { name: 'a'.repeat(40) }, message: /at most 32 characters/ },
    { spec: { name: 'deploy', members: ['alice'] }, message: /members/ },
  ],
  makeDrift: async (handle) => {
    const path = `${handle.realRoot}/etc/group`;
    await fs.writeFile(path, (await fs.readFile(path, 'utf8')).replace(/^deploy:x:2500:/m, 'deploy:x:2600:'));
  },
  driftedField: 'gid',
});
