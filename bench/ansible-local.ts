/**
 * The same 200 files converged by Capstan and by ansible-playbook -c local
 * (Debian's ansible, copy module in a loop), first run and no-op run, side by
 * side, with the ratio.
 *
 *   npm run build && npx tsx bench/ansible-local.ts [files]
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { capstanArgv, fmt, machine, measure } from './measure.js';

const N = Number(process.argv[2] ?? 200);

async function main(): Promise<void> {
  const base = await mkdtemp(path.join(os.tmpdir(), 'capstan-vs-ansible-'));
  try {
    const repo = path.join(base, 'repo');
    const capRoot = path.join(base, 'capstan-root');
    const ansRoot = path.join(base, 'ansible-root');
    await mkdir(repo, { recursive: true });
    await mkdir(ansRoot, { recursive: true });
    const docs = [`kind: Host\nname: local\nspec: { transport: local, root: ${capRoot} }\n`];
    docs.push(`kind: Directory\nname: data\ntarget: local\nspec: { path: /data, mode: "0755" }\n`);
    const items: string[] = [];
    for (let i = 0; i < N; i++) {
      docs.push(`kind: File\nname: f${i}\ntarget: local\nspec: { path: /data/f${i}, content: "file ${i}\\n", mode: "0644" }\n`);
      items.push(`      - { name: f${i}, content: "file ${i}\\n" }`);
    }
    await writeFile(path.join(repo, 'spec.yaml'), docs.join('---\n'));
    const playbook = path.join(base, 'playbook.yaml');
    await writeFile(
      playbook,
      [
        '- hosts: localhost',
        '  gather_facts: false',
        '  tasks:',
        `    - file: { path: ${ansRoot}/data, state: directory, mode: "0755" }`,
        `    - copy: { dest: "${ansRoot}/data/{{ item.name }}", content: "{{ item.content }}", mode: "0644" }`,
        '      loop:',
        ...items,
        '',
      ].join('\n'),
    );
    const state = `sqlite:${path.join(base, 'state.db')}`;
    const ansible = ['ansible-playbook', '-c', 'local', '-i', 'localhost,', playbook];
    const env = { ...process.env, ANSIBLE_NOCOLOR: '1', ANSIBLE_PYTHON_INTERPRETER: '/usr/bin/python3', ANSIBLE_LOCALHOST_WARNING: 'false' } as Record<string, string>;

    console.log(`machine: ${machine()}`);
    console.log(`${N} files, first run then no-op run\n`);
    const rows: [string, number, number][] = [];
    for (const label of ['first run', 'no-op run']) {
      const c = await measure(capstanArgv('apply', repo, '--state', state, '--yes'));
      const a = await measure(ansible, { env });
      rows.push([label, c.seconds, a.seconds]);
    }
    console.log('| run | Capstan | Ansible | Ansible / Capstan |');
    console.log('|---|---:|---:|---:|');
    for (const [label, c, a] of rows) console.log(`| ${label} | ${fmt(c)} | ${fmt(a)} | ${(a / c).toFixed(1)}x |`);
  } finally {
    await rm(base, { recursive: true, force: true });
  }
}

await main();
