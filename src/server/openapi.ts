/**
 * The OpenAPI 3.1 document of the controller's API, made by @fastify/swagger
 * from each route's `schema` (built here from route-schemas.ts as routes are
 * registered) and served at `GET /api/openapi.json` to any token holder
 * (viewer and up): it holds the shapes of requests and answers, never a value
 * from the store, a token or a secret.
 *
 * Every operation carries `x-capstan-role`: the least role that may call it
 * (`none` for routes without a token, the webhooks checking their signature).
 *
 * The schemas document; they change nothing on the wire. Handlers check their
 * input themselves, with the messages the UI shows, and answers are serialised
 * with JSON.stringify as before, so a schema can never drop or coerce a field a
 * client reads. Instead the server tests turn on `checkResponses`: every JSON
 * answer is parsed with its documented schema and a mismatch fails the request.
 */
import swagger from '@fastify/swagger';
import type { FastifyInstance, FastifySchema, RouteOptions } from 'fastify';
import { z } from 'zod';
import { ERROR_SCHEMA, ROUTE_DOCS, type RouteDoc } from './route-schemas.js';

export const OPENAPI_PATH = '/api/openapi.json';
/** The version of the API (not of Capstan): it changes when a route or shape changes incompatibly. */
export const API_VERSION = '1';

type JsonObject = Record<string, unknown>;

/** `METHOD URL` of each route registered on the app (HEAD routes fastify adds for GET left out). */
const routesByApp = new WeakMap<FastifyInstance, string[]>();

/** The routes registered on an app built by buildServer, as `METHOD URL`. */
export function registeredRoutes(app: FastifyInstance): readonly string[] {
  return routesByApp.get(app) ?? [];
}

/** Call first in buildServer, before any route. */
export async function registerOpenApi(app: FastifyInstance, options: { readonly checkResponses?: boolean } = {}): Promise<void> {
  const routes: string[] = [];
  routesByApp.set(app, routes);
  app.setValidatorCompiler(() => () => true);
  app.setSerializerCompiler(() => (data) => JSON.stringify(data));
  app.addHook('onRoute', (route: RouteOptions) => {
    for (const method of [route.method].flat()) {
      if (method === 'HEAD') continue;
      const key = `${method} ${route.url}`;
      routes.push(key);
      const doc = ROUTE_DOCS[key];
      if (doc) route.schema = { ...fastifySchemaOf(doc, route.config?.role), ...route.schema };
    }
  });
  if (options.checkResponses) {
    app.addHook('preSerialization', async (request, reply, payload) => {
      const key = `${request.method} ${request.routeOptions.url ?? ''}`;
      const doc = ROUTE_DOCS[key];
      if (!doc) return payload;
      const response = responsesOf(doc, request.routeOptions.config.role)[reply.statusCode];
      if (!response) throw new Error(`${key} answered ${reply.statusCode}, a status its documentation (route-schemas.ts) does not list`);
      const parsed = response.schema?.safeParse(payload);
      if (parsed && !parsed.success) throw new Error(`${key} answered ${reply.statusCode} with a body its documented schema refuses: ${z.prettifyError(parsed.error)}`);
      return payload;
    });
  }
  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'Capstan controller API',
        version: API_VERSION,
        description: 'The HTTP API of `capstan serve`. Send `Authorization: Bearer <token>` (from `capstan token create`); each operation says the least role it needs in `x-capstan-role`.',
      },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
    },
  });
  app.get(OPENAPI_PATH, { config: { role: 'viewer' } }, async () => app.swagger());
}

/** The documented answers, with 401 and 403 for a route that needs a token (the auth hook sends them). */
function responsesOf(doc: RouteDoc, role: string | undefined): RouteDoc['responses'] {
  if (!role) return doc.responses;
  return {
    ...doc.responses,
    401: { description: 'No valid token.', schema: ERROR_SCHEMA },
    403: { description: `The token's role is below ${role}.`, schema: ERROR_SCHEMA },
  };
}

function fastifySchemaOf(doc: RouteDoc, role: string | undefined): FastifySchema & JsonObject {
  const response: JsonObject = {};
  for (const [status, r] of Object.entries(responsesOf(doc, role))) {
    response[status] = r.schema
      ? { description: r.description, ...jsonSchemaOf(r.schema) }
      : { description: r.description, ...(r.contentType ? { content: { [r.contentType]: { schema: { type: 'string' } } } } : {}) };
  }
  return {
    summary: doc.summary,
    ...(doc.description ? { description: doc.description } : {}),
    tags: [...doc.tags],
    ...(doc.params ? { params: jsonSchemaOf(doc.params) } : {}),
    ...(doc.querystring ? { querystring: jsonSchemaOf(doc.querystring) } : {}),
    ...(doc.body ? { body: jsonSchemaOf(doc.body) } : {}),
    response,
    security: role ? [{ bearer: [] }] : [],
    'x-capstan-role': role ?? 'none',
  };
}

function jsonSchemaOf(schema: z.ZodType): JsonObject {
  const { $schema: _schema, ...rest } = z.toJSONSchema(schema, { target: 'draft-2020-12', io: 'output', unrepresentable: 'any' }) as JsonObject;
  return rest;
}
