import * as fs from 'node:fs/promises';
import { runProviderConformance } from '../testing/conformance.js';
import { packageProvider } from './package.js';
import { buildDeb, dpkgInRoot } from './testing/debs.js';
import { openTestHost } from './testing/hosts.js';

runProviderConformance({
  provider: packageProvider,
  async connect() {
    const host = await openTestHost();
    await fs.mkdir(host.real('/debs'));
    await buildDeb(host.real('/debs'), { name: 'capstan-hello', version: '1.0-1' });
    await buildDeb(host.real('/debs'), { name: 'capstan-hello', version: '2.0-1' });
    return { handle: host.handle, cleanup: host.cleanup };
  },
  create: { name: 'capstan-hello', state: 'present', deb: '/debs/capstan-hello_1.0-1.deb', version: '1.0-1', purge: false, updateCache: false, cacheValidTime: 0 },
  update: { name: 'capstan-hello', state: 'present', deb: '/debs/capstan-hello_2.0-1.deb', version: '2.0-1', purge: false, updateCache: false, cacheValidTime: 0 },
  invalidSpecs: [
    { spec: { name: 'Nginx' }, message: /Debian package name/ },
    { spec: { name: '-oDebug=1' }, message: /Debian package name/ },
    { spec: { name: 'nginx', state: 'installed' }, message: /state must be "present", "absent" or "latest"/ },
    { spec: { name: 'nginx', state: 'latest', version: '1.0' }, message: /version makes no sense with state: latest/ },
    { spec: { name: 'nginx', purge: true }, message: /purge needs state: absent/ },
    { spec: { name: 'nginx', updateCache: true, cacheValidTime: '6 hours' }, message: /cacheValidTime must be/ },
    { spec: { name: 'nginx', version: '2.*', deb: '/x.deb' }, message: /version pattern makes no sense with deb/ },
    { spec: { name: 'nginx', version: 'latest' }, message: /Debian version/ },
    { spec: { name: 'nginx', state: 'absent', version: '1.0' }, message: /version makes no sense/ },
    { spec: { name: 'nginx', deb: 'x.deb' }, message: /path must be absolute/ },
    { spec: { name: 'nginx', deb: '/tmp/x.tar' }, message: /\.deb file/ },
    { spec: { name: 'nginx', colour: 'blue' }, message: /colour/ },
  ],
  // Someone downgrades the package by hand.
  makeDrift: (handle) => dpkgInRoot(handle.realRoot, ['-i', `${handle.realRoot}/debs/capstan-hello_1.0-1.deb`]),
  driftedField: 'version',
});
