/**
 * The templates' comment steps, run for real: the GitLab note script in bash against a
 * local HTTP server that answers GitLab's notes API (paginated), and the
 * actions/github-script body with a recording `github` client. Each must create the
 * comment once, then update that one (found by the marker), never add a second.
 */
import { execa } from 'execa';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { readFileSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { ROOT } from '../e2e/harness.js';

const MARKER = '<!-- capstan-plan -->';
interface Note { id: number; body: string }

function gitlabNoteScript(): string {
  const pipeline = parse(readFileSync(path.join(ROOT, 'ci-templates/gitlab/capstan.gitlab-ci.yml'), 'utf8')) as { plan: { script: string[] } };
  const script = pipeline.plan.script.find((line) => line.includes('node --input-type=module'));
  if (!script) throw new Error('the plan job has no note script');
  return script;
}

function githubCommentScript(): string {
  const workflow = parse(readFileSync(path.join(ROOT, 'ci-templates/github/capstan.yml'), 'utf8')) as { jobs: { plan: { steps: { uses?: string; with?: { script?: string } }[] } } };
  const script = workflow.jobs.plan.steps.find((s) => s.uses?.startsWith('actions/github-script@'))?.with?.script;
  if (!script) throw new Error('the plan job has no github-script step');
  return script;
}

/** GitLab's MR notes API for project 7, MR 3, one note per page so the script must follow x-next-page. */
async function notesServer(notes: Note[]): Promise<{ server: Server; url: string; requests: string[] }> {
  const requests: string[] = [];
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      const url = new URL(req.url ?? '/', 'http://x');
      requests.push(`${req.method} ${url.pathname}`);
      if (req.headers['private-token'] !== 'glpat-test') return res.writeHead(401).end();
      const base = '/api/v4/projects/7/merge_requests/3/notes';
      if (req.method === 'GET' && url.pathname === base) {
        const page = Number(url.searchParams.get('page') ?? '1');
        const next = page < notes.length ? String(page + 1) : '';
        res.writeHead(200, { 'content-type': 'application/json', 'x-next-page': next });
        return res.end(JSON.stringify(notes.slice(page - 1, page)));
      }
      if (req.method === 'POST' && url.pathname === base) {
        notes.push({ id: 100 + notes.length, body: (JSON.parse(body) as Note).body });
        return res.writeHead(201).end('{}');
      }
      const put = new RegExp(`^${base}/(\\d+)$`).exec(url.pathname);
      const note = put && notes.find((n) => n.id === Number(put[1]));
      if (req.method === 'PUT' && note) {
        note.body = (JSON.parse(body) as Note).body;
        return res.writeHead(200).end('{}');
      }
      res.writeHead(404).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/api/v4`, requests };
}

let dir: string | undefined;
let server: Server | undefined;
afterEach(async () => {
  server?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('the GitLab plan note script', () => {
  async function run(env: Record<string, string>, planMd: string) {
    await writeFile(path.join(dir!, 'plan.md'), planMd);
    return execa('bash', ['-euo', 'pipefail', '-c', gitlabNoteScript()], { cwd: dir, env: { ...env, CI_PROJECT_ID: '7', CI_MERGE_REQUEST_IID: '3' }, reject: false });
  }

  it('creates the note, then updates that one on a later page instead of adding another; without a token it posts nothing', async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'capstan-ci-note-'));
    const notes: Note[] = [{ id: 1, body: 'LGTM' }];
    const api = await notesServer(notes);
    server = api.server;
    const env = { CI_API_V4_URL: api.url, CAPSTAN_GITLAB_TOKEN: 'glpat-test' };

    const first = await run(env, `${MARKER}\nPlan: 1 to create\n`);
    expect(first.stderr).toBe('');
    expect(first.exitCode).toBe(0);
    notes.push({ id: 2, body: 'another comment' });
    const second = await run(env, `${MARKER}\nPlan: 2 to create\n`);
    expect(second.exitCode).toBe(0);
    expect(notes).toEqual([{ id: 1, body: 'LGTM' }, { id: 101, body: `${MARKER}\nPlan: 2 to create\n` }, { id: 2, body: 'another comment' }]);
    expect(api.requests.filter((r) => r.startsWith('PUT'))).toEqual(['PUT /api/v4/projects/7/merge_requests/3/notes/101']);

    const before = api.requests.length;
    const skipped = await run({ CI_API_V4_URL: api.url }, `${MARKER}\n`);
    expect(skipped.exitCode).toBe(0);
    expect(skipped.stdout).toContain('CAPSTAN_GITLAB_TOKEN is not set: not posting the plan note');
    expect(api.requests.length).toBe(before);

    const notMarkdown = await run(env, 'Plan: 1 to create\n');
    expect(notMarkdown.exitCode).not.toBe(0);
    expect(notMarkdown.stderr).toContain(`plan.md does not start with ${MARKER}`);
  });
});

describe('the GitHub plan comment script', () => {
  it('creates the comment, then updates the one that starts with the marker; a plan without the marker fails the step and posts nothing', async () => {
    const comments: Note[] = [{ id: 1, body: 'LGTM' }];
    const calls: string[] = [];
    const github = {
      paginate: async () => comments.map((c) => ({ ...c })),
      rest: {
        issues: {
          listComments: () => undefined,
          createComment: async ({ body }: { body: string }) => { calls.push('create'); comments.push({ id: 100 + comments.length, body }); },
          updateComment: async ({ comment_id, body }: { comment_id: number; body: string }) => { calls.push(`update ${comment_id}`); comments.find((c) => c.id === comment_id)!.body = body; },
        },
      },
    };
    const failures: string[] = [];
    const core = { setFailed: (m: string) => failures.push(m) };
    const context = { repo: { owner: 'acme', repo: 'infra' }, issue: { number: 3 } };
    const AsyncFunction = Object.getPrototypeOf(async () => undefined).constructor as new (...args: string[]) => (...a: unknown[]) => Promise<void>;
    const run = (planMd: string) => {
      const fakeRequire = (id: string) => {
        if (id !== 'node:fs') throw new Error(`unexpected require(${id})`);
        return { readFileSync: (file: string) => (file === 'plan.md' ? planMd : '') };
      };
      return new AsyncFunction('require', 'github', 'context', 'core', githubCommentScript())(fakeRequire, github, context, core);
    };
    await run(`${MARKER}\nPlan: 1 to create\n`);
    await run(`${MARKER}\nPlan: 2 to create\n`);
    expect(failures).toEqual([]);
    expect(calls).toEqual(['create', 'update 101']);
    expect(comments).toEqual([{ id: 1, body: 'LGTM' }, { id: 101, body: `${MARKER}\nPlan: 2 to create\n` }]);
    await run('Plan: text\n');
    expect(failures).toEqual([`plan.md does not start with ${MARKER}`]);
    expect(calls).toEqual(['create', 'update 101']);
  });
});
