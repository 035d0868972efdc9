import * as fs from 'node:fs/promises';
import { runProviderConformance } from '../testing/conformance.js';
import { execProvider, type ExecLive } from './exec.js';
import { openTestHost } from './testing/hosts.js';

runProviderConformance({
  provider: execProvider,
  async connect() {
    const host = await openTestHost();
    await fs.mkdir(host.real('/work'));
    return { handle: host.handle, cleanup: host.cleanup };
  },
  create: { command: ['touch', 'done-1'], cwd: '/work', creates: '/work/done-1', undo: ['rm', '-f', 'done-1'], shell: false, timeout: '10s', refreshOnly: false },
  update: {
    command: ['touch', 'done-2'],
    cwd: '/work',
    creates: '/work/done-2',
    unless: ['test', '-e', 'skip'],
    undo: ['rm', '-f', 'done-1', 'done-2'],
    shell: false,
    timeout: '10s',
    refreshOnly: false,
  },
  invalidSpecs: [
    { spec: { command: 'systemctl restart nginx' }, message: /set shell: true/ },
    { spec: { command: ['echo', 'hi'], shell: true }, message: /with shell: true, command must be one string/ },
    { spec: { command: [] }, message: /must name a program/ },
    { spec: { command: [''] }, message: /program of command must not be empty/ },
    { spec: { command: ['true'], timeout: '10 minutes' }, message: /timeout must be a duration/ },
    { spec: { command: ['true'], timeout: 0 }, message: /timeout must be a duration/ },
    { spec: { command: ['true'], creates: 'relative/path' }, message: /path must be absolute/ },
    { spec: { command: ['true'], environment: { '1BAD': 'x' } }, message: /environment variable names/ },
    { spec: { command: ['true'], onlyIf: 'test -f /x' }, message: /onlyIf is a string/ },
  ],
  // Someone deletes what the command made: its guard asks for it to run again.
  makeDrift: (handle) => fs.rm(`${handle.realRoot}/work/done-2`),
  driftedField: 'run',
  // An Exec "exists" while its guards are satisfied: absent means it would run.
  isAbsent: (live: ExecLive | null) => live === null || live.guardsAllow,
});
