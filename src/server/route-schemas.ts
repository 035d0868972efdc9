/**
 * What each route of the controller's API takes and answers, as zod schemas:
 * the source of the OpenAPI document (`/api/openapi.json`, docs/api.md), and
 * checked against every answer the server tests get (`checkResponses`).
 *
 * Keyed by `METHOD URL` as the route is registered. Objects are loose: a
 * client must ignore fields it does not know, and the server may add some.
 * A route's role is its `config.role` (openapi.ts copies it to `x-capstan-role`).
 */
import { z } from 'zod';

export interface RouteDoc {
  readonly summary: string;
  readonly description?: string;
  readonly tags: readonly string[];
  readonly params?: z.ZodObject;
  readonly querystring?: z.ZodObject;
  readonly body?: z.ZodType;
  /** Status code → schema of the JSON body; `null` for a body that is not JSON (text, an event stream, none). */
  readonly responses: Readonly<Record<number, { readonly description: string; readonly schema: z.ZodType | null; readonly contentType?: string }>>;
}

export const ERROR_SCHEMA = z.looseObject({ error: z.string().meta({ description: 'What went wrong, for a person.' }) });
const nullable = <T extends z.ZodType>(t: T) => t.nullable();
const commit = z.string().meta({ description: 'A git commit SHA.', examples: ['3f2c9a1b7d0e4f5a6b7c8d9e0f1a2b3c4d5e6f70'] });
const timestamp = z.string().meta({ description: 'ISO 8601 time, UTC.', examples: ['2026-12-03T18:00:00.000Z'] });

const stackName = z.looseObject({ name: z.string().meta({ description: 'The stack name from the controller config.', examples: ['prod'] }) });
const limit = (max: number, fallback: number) => z.string().optional().meta({ description: `How many, newest first: 1 to ${max} (default ${fallback}).`, examples: ['20'] });

const runCounts = z.looseObject({ create: z.number(), update: z.number(), replace: z.number(), delete: z.number(), noop: z.number(), failed: z.number(), skipped: z.number() });
const run = z
  .looseObject({
    id: z.number().int(),
    stack: z.string(),
    kind: z.enum(['apply', 'plan', 'drift']),
    status: z.enum(['running', 'succeeded', 'failed', 'interrupted']),
    commit: nullable(commit),
    author: z.string().nullable(),
    message: z.string().nullable().meta({ description: 'The commit message.' }),
    actor: z.string().meta({ description: 'Who ran it (user name; `controller` for the reconcile loop).' }),
    startedAt: timestamp,
    finishedAt: timestamp.nullable(),
    counts: runCounts,
    error: z.string().nullable(),
  })
  ;

const branchMove = z.looseObject({ message: z.string() }).nullable().meta({ description: 'Set when the branch head moved backwards (a force-push): the plan waits for approval.' });
const planSummary = z.looseObject({
  id: z.string(),
  state: z.enum(['latest', 'pending', 'approved', 'applied', 'stale', 'superseded']),
  commit: commit.nullable(),
  createdAt: timestamp,
  decidedBy: z.string().nullable(),
  decidedAt: timestamp.nullable(),
  counts: z.record(z.string(), z.number()).meta({ description: 'Changes by action (create, update, replace, delete, noop).' }),
  diagnostics: z.array(z.unknown()),
  branchMovedBackwards: branchMove,
});

const stack = z
  .looseObject({
    name: z.string(),
    status: z.string().meta({ description: 'pending, reconciling, synced, out-of-sync, awaiting-approval, drifted, denied (by policy), failed, invalid, ...' }),
    lastAppliedCommit: commit.nullable(),
    headCommit: commit.nullable(),
    policy: z.enum(['auto', 'approve', 'plan-only']),
    selfHeal: z.boolean(),
    drifted: z.number().int().meta({ description: 'Resources found drifted by the last drift check.' }),
    lastRun: run.nullable(),
    repo: z.string().meta({ description: 'The repository, credentials removed.' }),
    branch: z.string(),
    path: z.string(),
    error: z.string().nullable(),
    rollback: z.looseObject({ commit, head: commit.nullable() }).nullable().meta({ description: 'An active rollback: `commit` is applied until the branch moves past `head`.' }),
    branchMovedBackwards: branchMove,
    owner: z.string().nullable().meta({ description: 'The replica that reconciled the stack last.' }),
    ownedHere: z.boolean().meta({ description: 'This replica holds the stack now.' }),
    failures: z.number().int().meta({ description: 'Consecutive failed passes (the backoff grows with them).' }),
    lastPass: z.looseObject({}).nullable(),
    nextPassInMs: z.number().nullable(),
    updatedAt: timestamp.nullable(),
    paused: z.looseObject({ by: z.string(), at: timestamp }).nullable().meta({ description: 'Set while the stack is paused: who paused it and when.' }),
  })
  ;

const controllerEvent = z
  .looseObject({
    id: z.number().int(),
    at: timestamp,
    type: z.string().meta({ examples: ['sync.requested'] }),
    stack: z.string(),
    passId: z.string().nullable(),
    runId: z.number().int().nullable(),
    message: z.string(),
    data: z.record(z.string(), z.unknown()).optional(),
  })
  ;

const token = z
  .looseObject({
    id: z.string(),
    name: z.string(),
    role: z.enum(['viewer', 'operator', 'admin']),
    createdAt: timestamp,
    expiresAt: timestamp.nullable(),
    revokedAt: timestamp.nullable(),
  })
  ;

const accepted = (description: string, shape: z.ZodRawShape) => ({ description, schema: z.looseObject({ status: z.string(), ...shape }) });
const e = (description: string) => ({ description, schema: ERROR_SCHEMA });
const NOT_FOUND = e('No such stack (or run, or token).');

/** A list of a stack's records, at most `?limit=` of them. */
const stackList = (summary: string, fallback: number, description: string, item: z.ZodType): RouteDoc => ({
  summary,
  tags: ['stacks'],
  params: stackName,
  querystring: z.looseObject({ limit: limit(500, fallback) }),
  responses: { 200: { description, schema: z.array(item) }, 404: NOT_FOUND },
});

export const ROUTE_DOCS: Readonly<Record<string, RouteDoc>> = {
  'GET /': { summary: 'The web UI', tags: ['process'], responses: { 200: { description: 'The UI page.', schema: null, contentType: 'text/html' } } },
  'GET /healthz': { summary: 'Liveness: the process answers', tags: ['process'], responses: { 200: { description: 'Alive.', schema: z.looseObject({ status: z.literal('ok') }) } } },
  'GET /readyz': {
    summary: 'Readiness: the store answers and the controller is not stopping',
    description: 'Anyone gets ready or not ready; a token holder also gets why (the store error) and the number of stacks.',
    tags: ['process'],
    responses: {
      200: { description: 'Ready.', schema: z.looseObject({ status: z.literal('ready'), stacks: z.number().int().optional() }) },
      503: { description: 'Not ready.', schema: z.looseObject({ status: z.string(), error: z.string().optional() }) },
    },
  },
  'GET /metrics': { summary: 'Prometheus metrics (names prefixed capstan_)', tags: ['process'], responses: { 200: { description: 'Prometheus text format.', schema: null, contentType: 'text/plain' } } },
  'GET /api/openapi.json': { summary: 'This API as an OpenAPI 3.1 document', tags: ['api'], responses: { 200: { description: 'The OpenAPI document.', schema: z.looseObject({ openapi: z.string() }) } } },
  'GET /api/stacks': { summary: 'Every stack with its status', tags: ['stacks'], responses: { 200: { description: 'The stacks, in config order.', schema: z.array(stack) } } },
  'GET /api/stacks/:name': {
    summary: 'One stack with its status and current plan',
    tags: ['stacks'],
    params: stackName,
    responses: { 200: { description: 'The stack.', schema: stack.extend({ plan: planSummary.nullable() }) }, 404: NOT_FOUND },
  },
  'GET /api/stacks/:name/runs': stackList("The stack's runs, newest first", 50, 'The runs.', run),
  'GET /api/runs/:id': {
    summary: 'One run with its results and events',
    tags: ['stacks'],
    params: z.looseObject({ id: z.string().meta({ description: 'The run id.', examples: ['42'] }) }),
    responses: {
      200: {
        description: 'The run.',
        schema: run.extend({
          results: z.array(z.looseObject({ address: z.string(), action: z.string(), status: z.string(), error: z.string().nullable(), durationMs: z.number() })),
          events: z.array(z.looseObject({ id: z.number().int(), at: timestamp, address: z.string().nullable(), type: z.string(), message: z.string() })),
        }),
      },
      404: NOT_FOUND,
    },
  },
  'GET /api/stacks/:name/plan': {
    summary: "The stack's current plan",
    description: 'JSON by default; `?format=text` gives the plan as `capstan plan` prints it. Secrets are redacted.',
    tags: ['stacks'],
    params: stackName,
    querystring: z.looseObject({ format: z.enum(['json', 'text']).optional().meta({ description: 'json (default) or text.' }) }),
    responses: {
      200: { description: 'The plan: its summary, its text and the plan value.', schema: planSummary.extend({ text: z.string(), plan: z.unknown() }) },
      404: e('No such stack, or no plan yet.'),
    },
  },
  'GET /api/stacks/:name/resources': {
    summary: 'The resources of a stack: managed ones and those only planned',
    tags: ['stacks'],
    params: stackName,
    responses: {
      200: {
        description: 'The inventory merged with the current plan.',
        schema: z.looseObject({
          stack: z.string(),
          planCommit: commit.nullable(),
          planId: z.string().nullable(),
          resources: z.array(
            z.looseObject({
              address: z.string(),
              kind: z.string(),
              target: z.string().nullable(),
              managed: z.boolean(),
              origin: z.enum(['created', 'adopted']).nullable(),
              lastRunId: z.number().int().nullable(),
              updatedAt: timestamp.nullable(),
              plannedAction: z.string().nullable(),
            }),
          ),
        }),
      },
      404: NOT_FOUND,
    },
  },
  'GET /api/stacks/:name/events': stackList("The stack's recent controller events", 100, 'The events, oldest first.', controllerEvent),
  'POST /api/stacks/:name/approve': {
    summary: 'Approve the pending plan',
    description: 'Under the approve policy, or under auto for a plan held back because the branch moved backwards.',
    tags: ['operations'],
    params: stackName,
    body: z.looseObject({ planId: z.string().optional().meta({ description: 'The plan you reviewed; refused (409) when another one is pending now.' }) }).optional(),
    responses: { 202: accepted('Approved; the next pass applies it.', { planId: z.string(), commit: commit.nullable() }), 404: NOT_FOUND, 409: e('Nothing awaits approval, or another plan does.') },
  },
  'POST /api/stacks/:name/sync': {
    summary: 'Reconcile the stack now',
    tags: ['operations'],
    params: stackName,
    responses: { 202: accepted('Queued.', {}), 404: NOT_FOUND, 409: e('The stack is paused: resume it first.'), 503: e('The controller is stopping.') },
  },
  'POST /api/stacks/:name/pause': {
    summary: 'Pause the stack',
    description: 'No replica fetches, plans, applies or heals it until it is resumed (the flag is in the store, so it survives restarts); a pass in flight finishes. Pausing a paused stack changes nothing.',
    tags: ['operations'],
    params: stackName,
    responses: {
      200: {
        description: 'Paused (now or already).',
        schema: z.looseObject({ status: z.literal('paused'), by: z.string().meta({ description: 'Who paused it.' }), at: timestamp }),
      },
      404: NOT_FOUND,
    },
  },
  'POST /api/stacks/:name/resume': {
    summary: 'Resume a paused stack',
    description: 'The next pass is a full one, whatever the commit. Resuming a running stack changes nothing.',
    tags: ['operations'],
    params: stackName,
    responses: { 200: { description: 'Running.', schema: z.looseObject({ status: z.literal('running') }) }, 404: NOT_FOUND },
  },
  'POST /api/stacks/:name/rollback': {
    summary: 'Apply an earlier commit until the branch moves',
    description: 'Only a commit of the branch history, or one this stack applied before.',
    tags: ['operations'],
    params: stackName,
    body: z.looseObject({ commit: z.string().meta({ description: '7 to 64 hex digits.', examples: ['3f2c9a1'] }) }),
    responses: {
      202: accepted('Queued.', { commit, until: z.string() }),
      400: e('Not a commit, or not one the stack may roll back to.'),
      404: NOT_FOUND,
      422: e('The commit cannot be resolved.'),
    },
  },
  'GET /api/events': {
    summary: 'Controller events as Server-Sent Events',
    description: 'Each event: `id`, `event` (its type) and `data` (the event as JSON, like GET /api/stacks/{name}/events).',
    tags: ['stacks'],
    querystring: z.looseObject({ stack: z.string().optional().meta({ description: 'Only the events of this stack.' }) }),
    responses: { 200: { description: 'An event stream that stays open.', schema: null, contentType: 'text/event-stream' } },
  },
  'GET /api/audit': {
    summary: 'The audit log, newest first',
    tags: ['admin'],
    querystring: z.looseObject({ limit: limit(1000, 100), before: z.string().optional().meta({ description: 'Only entries with a smaller id (paging).' }) }),
    responses: {
      200: {
        description: 'Audit entries.',
        schema: z.array(
          z.looseObject({
            id: z.number().int(),
            at: timestamp,
            actor: z.string(),
            role: z.string().nullable(),
            action: z.string(),
            target: z.string().nullable(),
            detail: z.unknown(),
            ip: z.string().nullable(),
            outcome: z.string(),
          }),
        ),
      },
    },
  },
  'POST /api/stacks/reload': {
    summary: 'Re-read the stacks of the config file',
    description: 'An invalid file changes nothing.',
    tags: ['admin'],
    responses: {
      200: {
        description: 'Reloaded.',
        schema: z.looseObject({ status: z.literal('reloaded'), file: z.string(), added: z.array(z.string()), updated: z.array(z.string()), removed: z.array(z.string()), unchanged: z.array(z.string()), note: z.string() }),
      },
      400: { description: 'The file is invalid.', schema: ERROR_SCHEMA.extend({ errors: z.array(z.string()) }) },
      503: e('The controller is stopping.'),
    },
  },
  'GET /api/tokens': { summary: 'The API tokens (never their secret part)', tags: ['admin'], responses: { 200: { description: 'The tokens.', schema: z.array(token) } } },
  'POST /api/tokens': {
    summary: 'Create an API token',
    tags: ['admin'],
    body: z.looseObject({
      role: z.enum(['viewer', 'operator', 'admin']).meta({ description: 'What the token may do: viewer reads, operator also syncs, approves and rolls back, admin also manages tokens, reloads and reads the audit log.' }),
      name: z.string().min(1).max(100).optional().meta({ description: 'A label for people, 1 to 100 characters (default: "<role> token").', examples: ['ci-deploy'] }),
      expires: z.union([z.string(), z.number()]).optional().meta({ description: 'A duration such as 30d or 12h.' }),
    }),
    responses: { 201: { description: 'The token; `token` is shown only this once.', schema: token.extend({ token: z.string() }) }, 400: e('A bad role, name or expiry.') },
  },
  'DELETE /api/tokens/:id': {
    summary: 'Revoke an API token',
    tags: ['admin'],
    params: z.looseObject({ id: z.string() }),
    responses: { 204: { description: 'Revoked.', schema: null }, 404: NOT_FOUND },
  },
  'POST /api/webhooks/:provider': {
    summary: 'A push from a git host: refresh the stacks that follow it',
    description:
      'No token: the body must be signed with a stack\'s webhookSecret (GitHub: X-Hub-Signature-256; Gitea: X-Gitea-Signature; GitLab: X-Gitlab-Token). Deliveries with a wrong signature are rate-limited per address, and each address may have at most webhookConcurrency deliveries in flight; a repeated delivery id is answered as a duplicate.',
    tags: ['webhooks'],
    params: z.looseObject({ provider: z.string().meta({ description: 'github, gitlab or gitea.', examples: ['github'] }) }),
    responses: {
      200: accepted('A ping (`pong`), or a delivery seen before (`duplicate`).', { delivery: z.string().optional() }),
      202: accepted('`accepted` (the stacks that follow the pushed ref are refreshed), or `ignored` (not a push, or no stack follows the ref; `reason` says which).', {
        delivery: z.string().optional(),
        stacks: z.array(z.string()).optional().meta({ description: 'The stacks refreshed.' }),
        reason: z.string().optional(),
      }),
      400: e('The delivery cannot be read.'),
      401: e('Missing or wrong signature.'),
      404: e('No such provider.'),
      413: e('The body is larger than webhookMaxBytes.'),
      429: e('Too many bad signatures from this address, or webhookConcurrency deliveries already in flight from it (with Retry-After).'),
    },
  },
};
