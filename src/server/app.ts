/**
 * The controller's HTTP server (fastify): the JSON API, webhooks, Server-Sent
 * Events, `/metrics`, `/healthz`, `/readyz` and the UI.
 *
 * Auth: every `/api/` route but webhooks needs `Authorization: Bearer <token>`
 * (401 without a valid one) with a role at least the route's (403 otherwise):
 * viewer reads; operator approves, syncs, rolls back, pauses and resumes; admin manages tokens,
 * reloads the stack list from the config file and reads the audit log. Every
 * mutating call of a token holder is written to the audit log (who, what, when,
 * from which address, outcome), refused ones included; requests without a
 * valid token and unknown routes are only counted and logged (audit.ts).
 * `/readyz` says ready or not to anyone, and why only to a token holder.
 */
import Fastify, { LogController, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import { parseDuration, type ControllerConfig, type StackConfig } from '../reconcile/config.js';
import { branchMoveOf, describeMove } from '../reconcile/branch-move.js';
import type { Controller } from '../reconcile/controller.js';
import type { EventBus } from '../reconcile/events.js';
import type { StackEngine } from '../reconcile/run-stack.js';
import { redactUrl } from '../source/git.js';
import { ROLES, type ControllerStore, type Role, type RunRecord, type StackStatusRecord, type Store } from '../state/store.js';
import { boundedAuditEntry, truncateUtf8 } from './audit.js';
import { authenticate, createApiToken, MAKE_A_TOKEN, roleAllows, type Principal } from './auth.js';
import { LogThrottle } from './log-throttle.js';
import { registerOpenApi } from './openapi.js';
import type { ControllerMetrics } from './metrics.js';
import { RateLimiter } from './rate-limit.js';
import { RELOAD_NOTE, reloadStacks } from './reload.js';
import { UI_HTML } from './ui.js';
import { deliveryId, parseWebhookEvent, pushMatchesStack, verifyWebhook, WEBHOOK_PROVIDERS, type WebhookProvider } from './webhooks.js';

declare module 'fastify' {
  interface FastifyRequest {
    principal: Principal | null;
  }
  interface FastifyContextConfig {
    /** The least role that may call the route; absent: no token needed. */
    role?: Role;
    /** The name of the action in the audit log. */
    action?: string;
  }
}

export interface ServerDeps {
  readonly config: ControllerConfig;
  readonly controller: Controller;
  readonly store: Store;
  readonly controllerStore: ControllerStore;
  readonly engine: StackEngine;
  readonly events: EventBus;
  readonly metrics: ControllerMetrics;
  readonly logger: Logger;
  /** How long webhook delivery ids are remembered against replays (default 7 days). */
  readonly webhookKeepMs?: number;
  /** Tests: check every JSON answer against its documented schema (openapi.ts). */
  readonly checkResponses?: boolean;
}

const MUTATING = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);
const SSE_HEARTBEAT_MS = 15_000;

export async function buildServer(deps: ServerDeps): Promise<FastifyInstance> {
  const { config, controller, controllerStore: cs, store, events, metrics } = deps;
  const app = Fastify({
    loggerInstance: deps.logger,
    trustProxy: config.trustProxy,
    bodyLimit: 1024 * 1024,
    logController: new LogController({ disableRequestLogging: true }),
    return503OnClosing: true,
  }) as unknown as FastifyInstance;
  app.decorateRequest('principal', null);
  // First: route schemas (and the OpenAPI document) are attached as routes register.
  await registerOpenApi(app, { checkResponses: deps.checkResponses });
  const streams = new Set<() => void>();
  /** Audit details a route sets itself (instead of its request body). */
  const auditDetails = new WeakMap<FastifyRequest, unknown>();

  // Anyone can send these: counted and logged at a bounded rate, never stored (see audit.ts).
  const rejectedLog = new LogThrottle(10);
  const rejected = (request: FastifyRequest, reason: string): void => {
    metrics.httpRejected(reason);
    const { log, suppressed } = rejectedLog.admit(reason);
    if (log) request.log.warn({ reason, method: request.method, route: request.routeOptions.url ?? null, ip: request.ip, ...(suppressed > 0 ? { suppressedSinceLast: suppressed } : {}) }, 'request refused before any route ran');
  };
  app.setNotFoundHandler(async (request, reply) => {
    rejected(request, 'unknown_route');
    return reply.code(404).send({ error: `no route ${request.method} ${truncateUtf8(request.url.split('?')[0] ?? '', 200)}` });
  });

  app.addHook('onRequest', async (request, reply) => {
    const role = request.routeOptions.config.role;
    if (!role) return;
    const auth = await authenticate(cs, request.headers.authorization);
    if ('failure' in auth) {
      rejected(request, `unauthenticated_${auth.failure}`);
      return reply.code(401).header('www-authenticate', 'Bearer realm="capstan"').send({ error: `authentication required (${auth.failure} token): send Authorization: Bearer <token>; make one with \`${MAKE_A_TOKEN}\`` });
    }
    request.principal = auth;
    if (!roleAllows(auth.role, role)) return reply.code(403).send({ error: `role ${auth.role} may not do this; it needs ${role}` });
    return undefined;
  });

  app.addHook('onResponse', async (request, reply) => {
    if (!MUTATING.has(request.method) || !request.url.startsWith('/api/') || request.url.startsWith('/api/webhooks/')) return;
    // Only callers with a valid token are audited (refusals of their calls included); see audit.ts.
    const p = request.principal;
    if (!p || request.routeOptions.url === undefined) return;
    const params = request.params as Record<string, string> | undefined;
    await cs
      .appendAudit(
        boundedAuditEntry({
          actor: `${p.name} (${p.tokenId})`,
          role: p.role,
          action: request.routeOptions.config.action ?? `${request.method} ${request.routeOptions.url}`,
          target: params?.name ?? params?.id ?? null,
          detail: auditDetails.has(request) ? auditDetails.get(request) : auditDetail(request.body),
          ip: request.ip,
          outcome: reply.statusCode < 400 ? 'ok' : `refused (${reply.statusCode})`,
        }),
      )
      .catch((err: unknown) => request.log.error({ err }, 'could not write the audit log'));
  });

  app.addHook('preClose', async () => {
    for (const end of [...streams]) end();
  });

  // --- process and UI --------------------------------------------------------
  app.get('/', async (_req, reply) => reply.type('text/html; charset=utf-8').header('content-security-policy', "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'").send(UI_HTML));
  app.get('/healthz', async () => ({ status: 'ok' }));
  // Without a token only "ready" or "not ready": why (the store's error text) is for token holders.
  app.get('/readyz', async (request, reply) => {
    let problem: { status: string; error?: string } | null = null;
    if (controller.stopping) problem = { status: 'stopping' };
    else {
      try {
        await cs.listStackStatus();
      } catch (err) {
        problem = { status: 'store unreachable', error: (err as Error).message };
      }
    }
    const auth = request.headers.authorization ? await authenticate(cs, request.headers.authorization).catch(() => null) : null;
    const detailed = auth !== null && !('failure' in auth);
    if (problem) return reply.code(503).send(detailed ? problem : { status: 'not ready' });
    return detailed ? { status: 'ready', stacks: controller.stacks.length } : { status: 'ready' };
  });
  app.get('/metrics', async (_req, reply) => reply.type(metrics.registry.contentType).send(await metrics.registry.metrics()));

  // --- stacks ----------------------------------------------------------------
  const viewer = { config: { role: 'viewer' as const } };
  const stackOr404 = (request: FastifyRequest<{ Params: { name: string } }>, reply: FastifyReply) => {
    const stack = controller.stack(request.params.name);
    if (!stack) void reply.code(404).send({ error: `no stack "${request.params.name}"` });
    return stack;
  };

  const stackView = async (name: string, status: StackStatusRecord | undefined) => {
    const stack = controller.stack(name)!;
    const [[lastRun], plan] = await Promise.all([store.listRuns({ stack: name, limit: 1 }), cs.getPlan(name)]);
    // The current plan records it when the branch head it was made for is older than what had been applied.
    const movedBackwards = plan && plan.commit === status?.headCommit ? branchMoveOf(plan.plan) : null;
    const runtime = controller.runtime(name);
    return {
      name,
      status: runtime.reconciling ? 'reconciling' : status?.paused ? 'paused' : (status?.status ?? 'pending'),
      lastAppliedCommit: status?.lastAppliedCommit ?? null,
      headCommit: status?.headCommit ?? null,
      policy: stack.policy,
      selfHeal: stack.selfHeal,
      drifted: status?.drifted ?? 0,
      lastRun: lastRun ? runView(lastRun) : null,
      repo: redactUrl(stack.repo),
      branch: stack.branch,
      path: stack.path,
      error: status?.error ?? null,
      rollback: status?.rollback ?? null,
      paused: status?.paused ?? null,
      branchMovedBackwards: movedBackwards ? { ...movedBackwards, message: describeMove(movedBackwards) } : null,
      owner: status?.owner ?? null,
      ownedHere: runtime.owned,
      failures: runtime.failures,
      lastPass: runtime.lastPass,
      nextPassInMs: runtime.nextPassInMs,
      updatedAt: status?.updatedAt ?? null,
    };
  };

  app.get('/api/stacks', viewer, async () => {
    const statuses = new Map((await cs.listStackStatus()).map((s) => [s.stack, s]));
    return Promise.all(controller.stacks.map((s) => stackView(s.name, statuses.get(s.name))));
  });

  app.get<{ Params: { name: string } }>('/api/stacks/:name', viewer, async (request, reply) => {
    const stack = stackOr404(request, reply);
    if (!stack) return reply;
    const view = await stackView(stack.name, await cs.getStackStatus(stack.name));
    const plan = await cs.getPlan(stack.name);
    return { ...view, plan: plan ? planSummary(plan) : null };
  });

  app.get<{ Params: { name: string }; Querystring: { limit?: string } }>('/api/stacks/:name/runs', viewer, async (request, reply) => {
    const stack = stackOr404(request, reply);
    if (!stack) return reply;
    const limit = Math.min(500, Math.max(1, Number(request.query.limit ?? 50) || 50));
    return (await store.listRuns({ stack: stack.name, limit })).map(runView);
  });

  app.get<{ Params: { id: string } }>('/api/runs/:id', viewer, async (request, reply) => {
    const id = Number(request.params.id);
    const run = Number.isInteger(id) ? await store.getRun(id) : undefined;
    if (!run || !controller.stack(run.stack)) return reply.code(404).send({ error: `no run ${request.params.id}` });
    const [results, runEvents] = await Promise.all([store.listResults(id), store.listEvents(id)]);
    return { ...runView(run), results, events: runEvents };
  });

  app.get<{ Params: { name: string }; Querystring: { format?: string } }>('/api/stacks/:name/plan', viewer, async (request, reply) => {
    const stack = stackOr404(request, reply);
    if (!stack) return reply;
    const plan = await cs.getPlan(stack.name);
    if (!plan) return reply.code(404).send({ error: `stack "${stack.name}" has no plan yet` });
    if (request.query.format === 'text') return reply.type('text/plain; charset=utf-8').send(plan.text);
    return { ...planSummary(plan), text: plan.text, plan: plan.plan };
  });

  app.get<{ Params: { name: string } }>('/api/stacks/:name/resources', viewer, async (request, reply) => {
    const stack = stackOr404(request, reply);
    if (!stack) return reply;
    const [inventory, plan] = await Promise.all([store.inventory(stack.name), cs.getPlan(stack.name)]);
    const planned = new Map(planChanges(plan?.plan).map((c) => [c.address, c.action]));
    const resources: ResourceView[] = inventory.map((e) => ({
      address: e.address,
      kind: e.kind,
      target: e.target,
      managed: true,
      origin: e.origin,
      lastRunId: e.lastRunId,
      updatedAt: e.updatedAt,
      plannedAction: planned.get(e.address) ?? null,
    }));
    const known = new Set(inventory.map((e) => e.address));
    for (const [address, action] of planned) {
      if (known.has(address)) continue;
      resources.push({ address, kind: address.split('/')[0] ?? '', target: null, managed: false, origin: null, lastRunId: null, updatedAt: null, plannedAction: action });
    }
    return { stack: stack.name, planCommit: plan?.commit ?? null, planId: plan?.id ?? null, resources };
  });

  app.get<{ Params: { name: string }; Querystring: { limit?: string } }>('/api/stacks/:name/events', viewer, async (request, reply) => {
    const stack = stackOr404(request, reply);
    if (!stack) return reply;
    return events.recent(stack.name, Math.min(500, Number(request.query.limit ?? 100) || 100));
  });

  // --- operator actions -------------------------------------------------------
  app.post<{ Params: { name: string }; Body: { planId?: string } | undefined }>(
    '/api/stacks/:name/approve',
    { config: { role: 'operator', action: 'stack.approve' } },
    async (request, reply) => {
      const stack = stackOr404(request, reply);
      if (!stack) return reply;
      const current = await cs.getPlan(stack.name);
      // Under auto, only a plan held back because the branch moved backwards waits for approval.
      const heldBack = stack.policy === 'auto' && current?.state === 'pending' && branchMoveOf(current.plan) !== null;
      if (stack.policy !== 'approve' && !heldBack) return reply.code(409).send({ error: `stack "${stack.name}" uses the ${stack.policy} policy: there is nothing to approve` });
      if (current?.state !== 'pending') return reply.code(409).send({ error: `no plan of stack "${stack.name}" awaits approval` });
      const wanted = request.body?.planId;
      const approved = await cs.transitionPlan(stack.name, 'pending', 'approved', { id: wanted ?? current.id, by: request.principal!.name });
      if (!approved) return reply.code(409).send({ error: `plan ${wanted ?? current.id} no longer awaits approval (the pending plan is ${current.id})` });
      events.emit({ type: 'plan.approved', stack: stack.name, passId: null, runId: null, message: `plan ${approved.id} approved by ${request.principal!.name}`, data: { planId: approved.id } });
      await controller.requestSync(stack.name);
      return reply.code(202).send({ status: 'approved', planId: approved.id, commit: approved.commit });
    },
  );

  app.post<{ Params: { name: string } }>('/api/stacks/:name/sync', { config: { role: 'operator', action: 'stack.sync' } }, async (request, reply) => {
    const stack = stackOr404(request, reply);
    if (!stack) return reply;
    const paused = (await cs.getStackStatus(stack.name))?.paused;
    if (paused) return reply.code(409).send({ error: `stack "${stack.name}" is paused (by ${paused.by} at ${paused.at}): resume it first` });
    if (!(await controller.requestSync(stack.name))) return reply.code(503).send({ error: 'the controller is stopping' });
    events.emit({ type: 'sync.requested', stack: stack.name, passId: null, runId: null, message: `sync requested by ${request.principal!.name}` });
    return reply.code(202).send({ status: 'queued' });
  });

  app.post<{ Params: { name: string }; Body: { commit?: unknown } | undefined }>(
    '/api/stacks/:name/rollback',
    { config: { role: 'operator', action: 'stack.rollback' } },
    async (request, reply) => {
      const stack = stackOr404(request, reply);
      if (!stack) return reply;
      const commit = request.body?.commit;
      if (typeof commit !== 'string' || !/^[0-9a-f]{7,64}$/i.test(commit)) {
        return reply.code(400).send({ error: 'give { "commit": "<sha>" }: the commit to roll back to, 7 to 64 hex digits' });
      }
      let target;
      let head;
      try {
        [target, head] = await Promise.all([
          deps.engine.resolve({ repo: stack.repo, ref: commit.toLowerCase(), path: stack.path }),
          deps.engine.resolve({ repo: stack.repo, ref: stack.branch, path: stack.path }),
        ]);
      } catch (err) {
        return reply.code(422).send({ error: `cannot roll back to ${commit}: ${(err as Error).message}` });
      }
      let permitted;
      try {
        permitted = await rollbackPermitted(deps, stack, target.commit!, head.commit!);
      } catch (err) {
        return reply.code(422).send({ error: `cannot roll back to ${commit}: ${(err as Error).message}` });
      }
      auditDetails.set(request, { commit: target.commit, head: head.commit, ...(permitted.ok ? { because: permitted.because } : { refused: permitted.why }) });
      if (!permitted.ok) {
        request.log.warn({ stack: stack.name, commit: target.commit, head: head.commit, by: request.principal!.name }, 'rollback refused: the commit is not on the branch history and was never applied');
        return reply.code(400).send({ error: `cannot roll back stack "${stack.name}" to ${target.commit}: ${permitted.why}` });
      }
      await cs.updateStackStatus(stack.name, { rollback: { commit: target.commit!, head: head.commit, by: request.principal!.name } });
      events.emit({ type: 'rollback.requested', stack: stack.name, passId: null, runId: null, message: `rollback to ${target.commit} requested by ${request.principal!.name}; it lasts until the next push`, data: { commit: target.commit } });
      await controller.requestSync(stack.name);
      return reply.code(202).send({ status: 'queued', commit: target.commit, until: 'the branch moves past ' + head.commit });
    },
  );

  // A paused stack is left alone by every replica (the flag is in the store) until it is resumed; a pass in flight finishes.
  app.post<{ Params: { name: string } }>('/api/stacks/:name/pause', { config: { role: 'operator', action: 'stack.pause' } }, async (request, reply) => {
    const stack = stackOr404(request, reply);
    if (!stack) return reply;
    const already = (await cs.getStackStatus(stack.name))?.paused;
    if (already) return { status: 'paused', by: already.by, at: already.at };
    const paused = { by: request.principal!.name, at: new Date().toISOString() };
    await cs.updateStackStatus(stack.name, { paused });
    events.emit({ type: 'stack.paused', stack: stack.name, passId: null, runId: null, message: `paused by ${paused.by}: no fetch, plan, apply or heal until resumed` });
    return { status: 'paused', ...paused };
  });

  app.post<{ Params: { name: string } }>('/api/stacks/:name/resume', { config: { role: 'operator', action: 'stack.resume' } }, async (request, reply) => {
    const stack = stackOr404(request, reply);
    if (!stack) return reply;
    if (!(await cs.getStackStatus(stack.name))?.paused) return { status: 'running' };
    await cs.updateStackStatus(stack.name, { paused: null });
    events.emit({ type: 'stack.resumed', stack: stack.name, passId: null, runId: null, message: `resumed by ${request.principal!.name}` });
    // A sync: the first pass after a pause is a full one, whatever the commit.
    await controller.requestSync(stack.name);
    return { status: 'running' };
  });

  // --- events stream ------------------------------------------------------------
  app.get<{ Querystring: { stack?: string } }>('/api/events', viewer, (request, reply) => {
    const only = request.query.stack;
    reply.hijack();
    const res = reply.raw;
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive', 'x-accel-buffering': 'no' });
    res.write(': capstan events\n\n');
    const unsubscribe = events.subscribe((e) => {
      if (only && e.stack !== only) return;
      res.write(`id: ${e.id}\nevent: ${e.type}\ndata: ${JSON.stringify(e)}\n\n`);
    });
    const heartbeat = setInterval(() => res.write(': ping\n\n'), SSE_HEARTBEAT_MS);
    const end = (): void => {
      clearInterval(heartbeat);
      unsubscribe();
      streams.delete(end);
      if (!res.writableEnded) res.end();
    };
    streams.add(end);
    request.raw.on('close', end);
  });

  // --- admin -------------------------------------------------------------------
  app.get<{ Querystring: { limit?: string; before?: string } }>('/api/audit', { config: { role: 'admin' } }, async (request) => {
    const limit = Math.min(1000, Math.max(1, Number(request.query.limit ?? 100) || 100));
    const before = request.query.before === undefined ? undefined : Number(request.query.before);
    return cs.listAudit({ limit, beforeId: before });
  });

  app.post('/api/stacks/reload', { config: { role: 'admin', action: 'stacks.reload' } }, async (request, reply) => {
    if (controller.stopping) return reply.code(503).send({ error: 'the controller is stopping' });
    const result = await reloadStacks(config.file, controller, metrics);
    if (!result.ok) {
      auditDetails.set(request, { file: result.file, errors: result.errors });
      return reply.code(400).send({ error: `${result.file} is invalid: nothing changed`, errors: result.errors });
    }
    auditDetails.set(request, { file: result.file, ...result.diff });
    request.log.info({ file: result.file, ...result.diff, by: request.principal!.name }, 'stacks reloaded');
    return { status: 'reloaded', file: result.file, ...result.diff, note: RELOAD_NOTE };
  });

  app.get('/api/tokens', { config: { role: 'admin' } }, async () => cs.listTokens());

  app.post<{ Body: { role?: unknown; name?: unknown; expires?: unknown } | undefined }>(
    '/api/tokens',
    { config: { role: 'admin', action: 'token.create' } },
    async (request, reply) => {
      const { role, name, expires } = request.body ?? {};
      if (typeof role !== 'string' || !ROLES.includes(role as Role)) return reply.code(400).send({ error: `role must be one of ${ROLES.join(', ')}` });
      if (name !== undefined && (typeof name !== 'string' || name.length === 0 || name.length > 100)) return reply.code(400).send({ error: 'name must be a string of 1 to 100 characters' });
      let expiresInMs: number | undefined;
      if (expires !== undefined) {
        expiresInMs = typeof expires === 'string' || typeof expires === 'number' ? parseDuration(expires) : undefined;
        if (!expiresInMs) return reply.code(400).send({ error: 'expires must be a duration such as 30d or 12h' });
      }
      const created = await createApiToken(cs, { role: role as Role, name: (name as string | undefined) ?? `${role} token`, expiresInMs });
      return reply.code(201).send({ ...created.record, token: created.token });
    },
  );

  app.delete<{ Params: { id: string } }>('/api/tokens/:id', { config: { role: 'admin', action: 'token.revoke' } }, async (request, reply) => {
    if (!(await cs.revokeToken(request.params.id))) return reply.code(404).send({ error: `no active token ${request.params.id}` });
    return reply.code(204).send();
  });

  // --- webhooks ---------------------------------------------------------------
  const failures = new RateLimiter(config.webhookRateLimit, Math.max(10, Math.ceil(config.webhookRateLimit / 2)));
  const refusedLog = new LogThrottle(10);
  const keepMs = deps.webhookKeepMs ?? 7 * 86_400_000;
  await app.register(async (scope) => {
    scope.removeAllContentTypeParsers();
    scope.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit: config.webhookMaxBytes }, (_req, body, done) => done(null, body));
    const results = new WeakMap<FastifyRequest, string>();
    // At most `webhookConcurrency` requests in flight per source address, counted from their headers: a
    // forged delivery costs an HMAC over its body per webhook secret, so a client cannot have many costing at once.
    const inFlight = new Map<string, number>();
    scope.addHook('onRequest', async (request, reply) => {
      const ip = request.ip;
      const count = inFlight.get(ip) ?? 0;
      if (count >= config.webhookConcurrency) {
        results.set(request, 'too_many_in_flight');
        rejected(request, 'webhook_concurrency');
        return reply
          .code(429)
          .header('retry-after', '1')
          .send({ error: `this address already has ${config.webhookConcurrency} webhook deliveries in flight (webhookConcurrency); retry later` });
      }
      inFlight.set(ip, count + 1);
      // 'close' comes once, whether the answer was sent or the client went away mid-upload.
      reply.raw.once('close', () => {
        const left = (inFlight.get(ip) ?? 1) - 1;
        if (left <= 0) inFlight.delete(ip);
        else inFlight.set(ip, left);
      });
    });
    scope.addHook('onResponse', async (request, reply) => {
      const provider = (request.params as { provider?: string }).provider ?? 'unknown';
      const label = WEBHOOK_PROVIDERS.includes(provider as WebhookProvider) ? provider : 'unknown';
      metrics.webhook(label, results.get(request) ?? (reply.statusCode === 413 ? 'too_large' : reply.statusCode === 415 ? 'bad_request' : `http_${reply.statusCode}`));
    });

    scope.post<{ Params: { provider: string } }>('/api/webhooks/:provider', { bodyLimit: config.webhookMaxBytes }, async (request, reply) => {
      const provider = request.params.provider as WebhookProvider;
      const answer = (code: number, result: string, body: Record<string, unknown>) => {
        results.set(request, result);
        return reply.code(code).send(body);
      };
      if (!WEBHOOK_PROVIDERS.includes(provider)) return answer(404, 'unknown_provider', { error: `no webhook for "${request.params.provider}"; use ${WEBHOOK_PROVIDERS.join(', ')}` });
      // The signature first (an HMAC over the body: cheap); only failures are rate-limited, per source address,
      // so forged deliveries can never use up what signed ones need.
      const raw = Buffer.isBuffer(request.body) ? request.body : Buffer.alloc(0);
      const verified = new Map<string, boolean>();
      const signedFor = controller.stacks.filter((s) => {
        if (!s.webhookSecret) return false;
        const key = s.webhookSecret.reveal();
        if (!verified.has(key)) verified.set(key, verifyWebhook(provider, request.headers, raw, s.webhookSecret));
        return verified.get(key)!;
      });
      if (signedFor.length === 0) {
        if (!failures.take(`${provider}:${request.ip}`)) return answer(429, 'rate_limited', { error: 'too many deliveries with a missing or wrong signature from this address; slow down' });
        const { log, suppressed } = refusedLog.admit(`${provider}:${request.ip}`);
        if (log) request.log.warn({ provider, ip: request.ip, ...(suppressed > 0 ? { suppressedSinceLast: suppressed } : {}) }, 'webhook refused: missing or wrong signature');
        return answer(401, 'unauthorized', { error: 'the signature (or token) is missing or does not match any configured webhook secret' });
      }
      const delivery = deliveryId(provider, request.headers, raw);
      if (!(await cs.rememberDelivery(provider, delivery, keepMs))) {
        return answer(200, 'duplicate', { status: 'duplicate', delivery });
      }
      let event;
      try {
        event = parseWebhookEvent(provider, request.headers, raw);
      } catch (err) {
        return answer(400, 'bad_request', { error: `cannot read the delivery: ${(err as Error).message}` });
      }
      if (event.kind === 'ping') return answer(200, 'ping', { status: 'pong' });
      if (event.kind === 'other') return answer(202, 'ignored', { status: 'ignored', reason: `event "${event.name}" is not a push` });
      const matched = signedFor.filter((s) => pushMatchesStack(s, event));
      if (matched.length === 0) return answer(202, 'no_match', { status: 'ignored', reason: `no configured stack follows ${event.ref} of this repository` });
      for (const s of matched) await controller.notify(s.name);
      request.log.info({ provider, delivery, ref: event.ref, after: event.after, stacks: matched.map((s) => s.name) }, 'webhook: refresh requested');
      await cs.appendAudit(
        boundedAuditEntry({
          actor: `webhook:${provider}`,
          role: null,
          action: 'webhook.push',
          target: matched.map((s) => s.name).join(','),
          detail: { delivery, ref: event.ref, after: event.after },
          ip: request.ip,
          outcome: 'ok',
        }),
      );
      return answer(202, 'accepted', { status: 'accepted', delivery, stacks: matched.map((s) => s.name) });
    });
  });

  return app;
}

/**
 * A rollback may only go to a commit of the stack's branch history (an
 * ancestor of its head, in the mirror) or to one this stack applied before
 * (its run history): never to any commit the mirror happens to hold, such as
 * one of an unmerged branch.
 */
async function rollbackPermitted(
  deps: Pick<ServerDeps, 'engine' | 'store'>,
  stack: StackConfig,
  commit: string,
  head: string,
): Promise<{ ok: true; because: string } | { ok: false; why: string }> {
  if (await deps.engine.isAncestor({ repo: stack.repo, ancestor: commit, descendant: head })) return { ok: true, because: `on the history of ${stack.branch}` };
  if (await deps.store.hasApplied(stack.name, commit)) return { ok: true, because: 'applied before by this stack' };
  return { ok: false, why: `it is not on the history of branch ${stack.branch} (head ${head}) and this stack never applied it` };
}

/** One resource of a stack: managed (in the inventory) or only planned so far. */
interface ResourceView {
  address: string;
  kind: string;
  target: string | null;
  managed: boolean;
  origin: 'created' | 'adopted' | null;
  lastRunId: number | null;
  updatedAt: string | null;
  /** The action of the stack's current plan for it (`noop` when in sync with it). */
  plannedAction: string | null;
}

function runView(run: RunRecord) {
  return {
    id: run.id,
    stack: run.stack,
    kind: run.kind,
    status: run.status,
    commit: run.commit,
    author: run.author,
    message: run.message,
    actor: run.actor.user,
    startedAt: run.startedAt,
    finishedAt: run.finishedAt,
    counts: run.counts,
    error: run.error,
  };
}

function planSummary(plan: { id: string; state: string; commit: string | null; createdAt: string; decidedBy: string | null; decidedAt: string | null; plan: unknown }) {
  const changes = planChanges(plan.plan);
  const counts: Record<string, number> = {};
  for (const c of changes) counts[c.action] = (counts[c.action] ?? 0) + 1;
  const diagnostics = (plan.plan as { diagnostics?: unknown[] } | null)?.diagnostics ?? [];
  const move = branchMoveOf(plan.plan);
  const branchMovedBackwards = move ? { ...move, message: describeMove(move) } : null;
  return { id: plan.id, state: plan.state, commit: plan.commit, createdAt: plan.createdAt, decidedBy: plan.decidedBy, decidedAt: plan.decidedAt, counts, diagnostics, branchMovedBackwards };
}

function planChanges(plan: unknown): { address: string; action: string }[] {
  const changes = (plan as { changes?: unknown } | null | undefined)?.changes;
  return Array.isArray(changes) ? (changes as { address: string; action: string }[]) : [];
}

/** What the audit log keeps of a request body: never a token or secret. */
function auditDetail(body: unknown): unknown {
  if (typeof body !== 'object' || body === null || Buffer.isBuffer(body)) return null;
  return Object.fromEntries(Object.entries(body as Record<string, unknown>).filter(([k]) => !/token|secret|password/i.test(k)));
}
