/**
 * Capstan and Ansible converging the same files on the same fleet over SSH:
 * real sshd servers in network namespaces (test/e2e/fleet/netns.ts), one client
 * key, strict known_hosts for both tools.
 *
 * Work: on every host, a few directories and FILES small files. Three runs each:
 * the first apply (everything created), a no-op apply (nothing to change), and a
 * one-file change (one file's content changed in the spec, so on every host).
 * Ansible does the same with the copy module in a loop (and the file module for
 * the directories), forks=10, pipelining on, facts not gathered, each host
 * writing below its own directory so both tools start from nothing.
 *
 *   npm run build && npx tsx bench/fleet.ts [hosts=10] [files=100]
 *
 * Needs root (network namespaces), openssh-server, openssh-client, iproute2 and
 * ansible (Debian's). Run it on an otherwise quiet machine: it prints the load
 * average before and after.
 */
import * as fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { createFleet, type Fleet } from '../test/e2e/fleet/netns.js';
import { capstanArgv, fmt, machine, measure } from './measure.js';

const HOSTS = Number(process.argv[2] ?? 10);
const FILES = Number(process.argv[3] ?? 100);
const DIRS = 4;
const PARALLELISM = 20;

function fileContent(i: number, version: number): string {
  return `# file ${i}, version ${version}\n${'x'.repeat(64)}\n`;
}

const fileName = (i: number) => `d${i % DIRS}/f${String(i).padStart(3, '0')}.conf`;

async function writeSpec(repo: string, fleet: Fleet, changed: number | null): Promise<void> {
  const docs = fleet.hosts.map((h) => fleet.hostDoc(h.index, { groups: ['bench'] }).replace(`root: ${h.root}`, `root: ${h.root}/capstan`));
  docs.push('kind: Directory\nname: bench\ntarget: group:bench\nspec: { path: /srv/bench, mode: "0755" }\n');
  for (let d = 0; d < DIRS; d++) docs.push(`kind: Directory\nname: d${d}\ntarget: group:bench\nspec: { path: /srv/bench/d${d}, mode: "0755" }\n`);
  for (let i = 0; i < FILES; i++) {
    const content = JSON.stringify(fileContent(i, i === changed ? 2 : 1));
    docs.push(`kind: File\nname: f${i}\ntarget: group:bench\nspec: { path: /srv/bench/${fileName(i)}, content: ${content}, mode: "0644" }\n`);
  }
  await fs.writeFile(path.join(repo, 'spec.yaml'), docs.join('---\n'));
}

async function writePlaybook(dir: string, fleet: Fleet, changed: number | null): Promise<void> {
  const inventory = [
    '[bench]',
    ...fleet.hosts.map((h) => `${h.name} ansible_host=${h.address} bench_root=${h.root}/ansible`),
    '',
    '[bench:vars]',
    'ansible_user=root',
    `ansible_ssh_private_key_file=${fleet.identityFile}`,
    `ansible_ssh_common_args='-o UserKnownHostsFile=${fleet.knownHostsFile} -o StrictHostKeyChecking=yes'`,
    'ansible_python_interpreter=/usr/bin/python3',
    '',
  ];
  await fs.writeFile(path.join(dir, 'inventory.ini'), inventory.join('\n'));
  const files = Array.from({ length: FILES }, (_, i) => ({ path: fileName(i), content: fileContent(i, i === changed ? 2 : 1) }));
  await fs.writeFile(path.join(dir, 'files.json'), JSON.stringify({ bench_files: files, bench_dirs: ['', ...Array.from({ length: DIRS }, (_, d) => `d${d}`)] }));
  await fs.writeFile(
    path.join(dir, 'playbook.yaml'),
    [
      '- hosts: bench',
      '  gather_facts: false',
      '  vars_files: [files.json]',
      '  tasks:',
      '    - file: { path: "{{ bench_root }}/srv/bench/{{ item }}", state: directory, mode: "0755" }',
      '      loop: "{{ bench_dirs }}"',
      '    - copy: { dest: "{{ bench_root }}/srv/bench/{{ item.path }}", content: "{{ item.content }}", mode: "0644" }',
      '      loop: "{{ bench_files }}"',
      '',
    ].join('\n'),
  );
  await fs.writeFile(
    path.join(dir, 'ansible.cfg'),
    ['[defaults]', 'forks = 10', 'host_key_checking = True', 'nocolor = True', 'retry_files_enabled = False', '', '[ssh_connection]', 'pipelining = True', ''].join('\n'),
  );
}

/** Both tools must leave the same files, with the same content, on every host. */
async function compareTrees(fleet: Fleet): Promise<void> {
  for (const h of fleet.hosts) {
    for (let i = 0; i < FILES; i++) {
      const [c, a] = await Promise.all(
        ['capstan', 'ansible'].map((tool) => fs.readFile(path.join(h.root, tool, 'srv/bench', fileName(i)), 'utf8')),
      );
      if (c !== a) throw new Error(`${h.name}: ${fileName(i)} differs between Capstan and Ansible`);
    }
  }
}

function load(): string {
  return os.loadavg().map((l) => l.toFixed(2)).join(' ');
}

async function main(): Promise<void> {
  const base = await fs.mkdtemp(path.join(os.tmpdir(), 'capstan-bench-fleet-'));
  const repo = path.join(base, 'repo');
  const ansibleDir = path.join(base, 'ansible');
  await fs.mkdir(repo);
  await fs.mkdir(ansibleDir);
  const state = `sqlite:${path.join(base, 'state.db')}`;
  const loadBefore = load();
  const fleet = await createFleet({ size: HOSTS });
  try {
    const capstan = capstanArgv('apply', repo, '--yes', '--state', state, '--parallelism', String(PARALLELISM));
    const ansible = ['ansible-playbook', '-i', 'inventory.ini', 'playbook.yaml'];
    const ansibleEnv = { ...process.env, ANSIBLE_CONFIG: path.join(ansibleDir, 'ansible.cfg'), ANSIBLE_NOCOLOR: '1' } as Record<string, string>;

    const rows: { run: string; capstan: number; ansible: number; capstanMiB: number }[] = [];
    for (const [run, changed] of [
      ['first apply', null],
      ['no-op apply', null],
      ['one-file change', 7],
    ] as const) {
      await writeSpec(repo, fleet, changed);
      await writePlaybook(ansibleDir, fleet, changed);
      const c = await measure(capstan);
      const a = await measure(ansible, { cwd: ansibleDir, env: ansibleEnv });
      if (run === 'no-op apply' && !/changed=0 /.test(a.stdout)) throw new Error('the no-op Ansible run changed something');
      rows.push({ run, capstan: c.seconds, ansible: a.seconds, capstanMiB: c.peakMiB });
      await compareTrees(fleet);
      process.stderr.write(`${run}: Capstan ${fmt(c.seconds)}, Ansible ${fmt(a.seconds)}\n`);
    }

    console.log(`${HOSTS} hosts x (${FILES} files + ${DIRS + 1} directories) over SSH, Capstan --parallelism ${PARALLELISM}, Ansible forks=10`);
    console.log(`machine: ${machine()}, ${new Date().toISOString().slice(0, 10)}`);
    console.log(`load average before: ${loadBefore}, after: ${load()}\n`);
    console.log('| run | Capstan | Ansible | Ansible / Capstan | Capstan peak RSS |');
    console.log('|---|---:|---:|---:|---:|');
    for (const r of rows) {
      console.log(`| ${r.run} | ${fmt(r.capstan)} | ${fmt(r.ansible)} | ${(r.ansible / r.capstan).toFixed(1)}x | ${r.capstanMiB.toFixed(0)} MiB |`);
    }
  } finally {
    await fleet.destroy();
    await fs.rm(base, { recursive: true, force: true });
  }
}

await main();
