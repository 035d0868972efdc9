/**
 * `Alerting`: on-call teams and who is notified for which service and severity,
 * rendered as one Alertmanager configuration.
 *
 * - Each team becomes a receiver. Credentials are never in the spec in clear:
 *   either files on the Alertmanager host that Alertmanager reads itself
 *   (`routingKeyFile`, `apiUrlFile`, ...), or `{ secret: PATH }` (`routingKey`,
 *   `apiUrl`, webhook `url`, ...), written into the configuration file; that file
 *   is then sensitive (see alerting-secrets.ts).
 * - Each route matches services and severities (plus raw matchers) and sends to
 *   a team. Escalation steps become sibling routes with the same matchers and a
 *   `group_wait` of the step's delay: Alertmanager notifies them only when the
 *   alert is still firing by then (a group that resolved in the meantime has no
 *   firing alert left to send).
 * - By default, a firing page inhibits the tickets of the same `slo` and
 *   `service` (only alerts that carry an `slo` label take part).
 */
import { z } from 'zod';
import { error, type Diagnostic } from '../../diag/diagnostic.js';
import { secretOnly } from '../../secrets/sensitive.js';
import { NAME_PATTERN, type Resource } from '../../spec/resource.js';
import { durationSchema, parseDuration } from './duration.js';

const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const MATCHER = /^\s*[a-zA-Z_][a-zA-Z0-9_]*\s*(=~|!~|!=|=)\s*"(?:[^"\\]|\\.)*"\s*$/;
const SERVICE = /^[A-Za-z0-9]([A-Za-z0-9_.-]*[A-Za-z0-9])?$/;

/** One object or a list of them; a single one is read as a list of one (so errors name the bad field, not the union). */
const oneOrMany = <T extends z.ZodTypeAny>(s: T) => z.preprocess((v) => (v === undefined || Array.isArray(v) ? v : [v]), z.array(s));
const absolutePath = z.string().startsWith('/', 'an absolute path on the Alertmanager host');
const matcherSchema = z.string().regex(MATCHER, 'a matcher looks like name="value", name!="value", name=~"regex" or name!~"regex"');

/** Exactly one of `keys` (a credential given one way); `optional`: at most one. */
const oneOf =
  (keys: readonly string[], optional = false) =>
  (v: object): boolean => {
    const n = keys.filter((k) => (v as Record<string, unknown>)[k] !== undefined).length;
    return optional ? n <= 1 : n === 1;
  };
const oneOfMessage = (keys: readonly string[], optional = false) => `give ${optional ? 'at most' : 'exactly'} one of ${keys.join(', ')}`;

const pagerdutyKeys = ['routingKeyFile', 'routingKey', 'serviceKey'] as const;
const slackKeys = ['apiUrlFile', 'apiUrl'] as const;
const opsgenieKeys = ['apiKeyFile', 'apiKey'] as const;
const webhookAuthKeys = ['basicAuth', 'bearerToken'] as const;

const sendResolved = z.boolean().optional().meta({ description: 'Also notify when the alert resolves; default true.', examples: [false] });
const onHost = (what: string, example: string) => absolutePath.optional().meta({ description: `File on the Alertmanager host holding ${what}; Alertmanager reads it itself.`, examples: [example] });
const secret = (what: string, example: string) =>
  secretOnly()
    .optional()
    .meta({ description: `${what} as { secret: PATH }, written into the configuration file (which is then sensitive).`, examples: [{ secret: example }] });
const one = 'one, or a list of them';

const teamSchema = z
  .object({
    name: z
      .string()
      .regex(NAME_PATTERN, 'team names are lowercase names such as api-oncall')
      .meta({ description: 'The team (an Alertmanager receiver), named by routes and defaultTeam.', examples: ['api-oncall'] }),
    pagerduty: oneOrMany(
      z
        .object({
          routingKeyFile: onHost('the PagerDuty Events v2 routing key', '/etc/alertmanager/secrets/pagerduty-api'),
          routingKey: secret('The Events v2 routing key', 'secrets/pagerduty-api.age'),
          serviceKey: secret('The (older) Events v1 service key', 'secrets/pagerduty-v1.age'),
          sendResolved,
        })
        .strict()
        .refine(oneOf(pagerdutyKeys), oneOfMessage(pagerdutyKeys)),
    )
      .optional()
      .meta({ description: `PagerDuty services to page (${one}); each with exactly one of ${pagerdutyKeys.join(', ')}.` }),
    slack: oneOrMany(
      z
        .object({
          apiUrlFile: onHost('the Slack webhook URL', '/etc/alertmanager/secrets/slack-webhook'),
          apiUrl: secret('The Slack webhook URL', 'secrets/slack-webhook.age'),
          channel: z.string().min(1).meta({ description: 'The channel to post in.', examples: ['#api-alerts'] }),
          sendResolved,
        })
        .strict()
        .refine(oneOf(slackKeys), oneOfMessage(slackKeys)),
    )
      .optional()
      .meta({ description: `Slack channels (${one}); each with exactly one of ${slackKeys.join(', ')}.` }),
    opsgenie: oneOrMany(
      z
        .object({
          apiKeyFile: onHost('the Opsgenie API key', '/etc/alertmanager/secrets/opsgenie'),
          apiKey: secret('The Opsgenie API key', 'secrets/opsgenie.age'),
          sendResolved,
        })
        .strict()
        .refine(oneOf(opsgenieKeys), oneOfMessage(opsgenieKeys)),
    )
      .optional()
      .meta({ description: `Opsgenie integrations (${one}); each with exactly one of ${opsgenieKeys.join(', ')}.` }),
    email: oneOrMany(z.object({ to: z.string().min(3).meta({ description: 'The address to mail (needs smtp).', examples: ['api-team@example.com'] }), sendResolved }).strict())
      .optional()
      .meta({ description: `Mail recipients: ${one}.` }),
    webhook: oneOrMany(
      z
        .object({
          /** A URL, or `{ secret: PATH }` when it carries a token. */
          url: z
            .union([z.string().url(), secretOnly()], { error: 'a URL, or { secret: PATH } when the URL carries a token' })
            .meta({ description: 'The URL Alertmanager POSTs its webhook payload to, or { secret: PATH } when the URL carries a token.', examples: ['https://hooks.example.com/alerts'] }),
          basicAuth: z
            .object({
              username: z.string().min(1).meta({ description: 'Basic auth user.', examples: ['alertmanager'] }),
              password: secretOnly().meta({ description: 'Basic auth password, as { secret: PATH }.', examples: [{ secret: 'secrets/hook-password.age' }] }),
            })
            .strict()
            .optional()
            .meta({ description: 'HTTP basic auth for the webhook; instead of bearerToken.' }),
          bearerToken: secret('A bearer token for the webhook (instead of basicAuth)', 'secrets/hook-token.age'),
          sendResolved,
        })
        .strict()
        .refine(oneOf(webhookAuthKeys, true), oneOfMessage(webhookAuthKeys, true)),
    )
      .optional()
      .meta({ description: `Generic webhooks: ${one}.` }),
  })
  .strict();

const timingSchema = {
  groupBy: z
    .array(z.string().regex(LABEL_NAME))
    .optional()
    .meta({ description: 'Labels that group alerts into one notification; default: the top-level groupBy.', examples: [['alertname', 'instance']] }),
  groupWait: durationSchema.optional().meta({ description: "How long to wait to batch a new group's first notification.", examples: ['10s'] }),
  groupInterval: durationSchema.optional().meta({ description: 'How long to wait before notifying of new alerts in a group already notified.', examples: ['5m'] }),
  repeatInterval: durationSchema.optional().meta({ description: 'How long before a still-firing alert is sent again.', examples: ['1h'] }),
};

const routeSchema = z
  .object({
    services: oneOrMany(z.string().regex(SERVICE))
      .optional()
      .meta({ description: 'Match alerts whose service label is one of these (one, or a list).', examples: [['api', 'web']] }),
    severities: oneOrMany(z.enum(['page', 'ticket']))
      .optional()
      .meta({ description: 'Match alerts of these severities (one, or a list).', examples: [['page']] }),
    matchers: z
      .array(matcherSchema)
      .optional()
      .meta({ description: 'More Alertmanager matchers, all of which must match.', examples: [['env="production"', 'team=~"api|web"']] }),
    team: z.string().min(1).meta({ description: 'The team notified.', examples: ['api-oncall'] }),
    ...timingSchema,
    /** Who else is notified when the alert is still firing after `after`. */
    escalation: z
      .array(
        z
          .object({
            after: durationSchema.meta({ description: 'How long the alert must still be firing.', examples: ['30m'] }),
            team: z.string().min(1).meta({ description: "The team notified then, besides the route's.", examples: ['sre-leads'] }),
          })
          .strict(),
      )
      .optional()
      .meta({ description: 'Who else is notified when the alert is still firing after a while.' }),
  })
  .strict();

const inhibitSchema = z
  .object({
    sourceMatchers: z.array(matcherSchema).min(1).meta({ description: 'Matchers of the alerts that inhibit.', examples: [['severity="page"']] }),
    targetMatchers: z.array(matcherSchema).min(1).meta({ description: 'Matchers of the alerts inhibited while a source fires.', examples: [['severity="ticket"']] }),
    equal: z.array(z.string().regex(LABEL_NAME)).optional().meta({ description: 'Labels source and target must have equal values in.', examples: [['service']] }),
  })
  .strict();

export const alertmanagerDeliverySchema = z
  .object({
    url: z.string().url().default('http://127.0.0.1:9093').meta({ description: 'Base URL of the Alertmanager API, as reached from where Capstan runs (to reload it).', examples: ['http://127.0.0.1:9093'] }),
    configFile: z
      .string()
      .startsWith('/')
      .default('/etc/prometheus/alertmanager.yml')
      .meta({ description: 'The configuration file on the Alertmanager host.', examples: ['/etc/alertmanager/alertmanager.yml'] }),
    /** amtool on the Alertmanager host, used to check the file before it is installed. */
    amtool: z.string().min(1).default('amtool').meta({ description: 'amtool on the Alertmanager host, used to check the file before it is installed.', examples: ['/usr/bin/amtool'] }),
  })
  .strict()
  .meta({ description: 'Where the configuration is delivered when the resource has a target Host: the Alertmanager on that host.' });

export const alertingSpecSchema = z
  .object({
    resolveTimeout: durationSchema.optional().meta({ description: "Alertmanager's resolve_timeout: an alert without end time counts as resolved after it.", examples: ['5m'] }),
    smtp: z
      .object({
        from: z.string().min(3).meta({ description: 'The sender address.', examples: ['alertmanager@example.com'] }),
        smarthost: z.string().regex(/^[^:\s]+:\d+$/, 'host:port').meta({ description: 'The SMTP server, host:port.', examples: ['smtp.example.com:587'] }),
        authUsername: z.string().optional().meta({ description: 'SMTP login user.', examples: ['alertmanager'] }),
        authPasswordFile: onHost('the SMTP password', '/etc/alertmanager/secrets/smtp'),
        authPassword: secret('The SMTP password (instead of authPasswordFile)', 'secrets/smtp.age'),
        requireTls: z.boolean().optional().meta({ description: "Require STARTTLS; default: Alertmanager's (true).", examples: [true] }),
      })
      .strict()
      .refine(oneOf(['authPasswordFile', 'authPassword'], true), oneOfMessage(['authPasswordFile', 'authPassword'], true))
      .optional()
      .meta({ description: 'The mail server, for email receivers.' }),
    /** The team that receives whatever no route matches. */
    defaultTeam: z.string().min(1).meta({ description: 'The team that receives whatever no route matches.', examples: ['sre'] }),
    groupBy: z
      .array(z.string().regex(LABEL_NAME))
      .default(() => ['alertname', 'slo', 'service'])
      .meta({ description: 'Labels that group alerts into one notification.', examples: [['alertname', 'service']] }),
    groupWait: durationSchema.default('30s').meta({ description: "How long to wait to batch a new group's first notification.", examples: ['10s'] }),
    groupInterval: durationSchema.default('5m').meta({ description: 'How long to wait before notifying of new alerts in a group already notified.', examples: ['10m'] }),
    repeatInterval: durationSchema.default('4h').meta({ description: 'How long before a still-firing alert is sent again.', examples: ['12h'] }),
    teams: z
      .array(teamSchema)
      .min(1)
      .meta({ description: 'The on-call teams and how each is reached; credentials are files on the Alertmanager host or { secret: PATH }, never in clear.' }),
    routes: z
      .array(routeSchema)
      .default(() => [])
      .meta({ description: 'Which team gets which alerts, first match wins; unmatched alerts go to defaultTeam.' }),
    inhibitTicketsByPages: z
      .boolean()
      .default(true)
      .meta({ description: 'A firing page inhibits the tickets of the same slo and service (alerts with an slo label only).', examples: [false] }),
    inhibitRules: z.array(inhibitSchema).default(() => []).meta({ description: 'More inhibit rules, as Alertmanager takes them.' }),
    alertmanager: alertmanagerDeliverySchema.default(() => ({ url: 'http://127.0.0.1:9093', configFile: '/etc/prometheus/alertmanager.yml', amtool: 'amtool' })),
  })
  .strict()
  .meta({
    examples: [
      {
        defaultTeam: 'sre',
        teams: [
          { name: 'sre', email: { to: 'sre@example.com' } },
          { name: 'api-oncall', pagerduty: { routingKey: { secret: 'secrets/pagerduty-api.age' } }, slack: { apiUrlFile: '/etc/alertmanager/secrets/slack-webhook', channel: '#api-alerts' } },
        ],
        routes: [{ services: ['api'], severities: ['page'], team: 'api-oncall', escalation: [{ after: '30m', team: 'sre' }] }],
        smtp: { from: 'alertmanager@example.com', smarthost: 'smtp.example.com:587' },
      },
    ],
  });

export type AlertingSpec = z.infer<typeof alertingSpecSchema>;
type RouteSpec = AlertingSpec['routes'][number];

function escapeRegex(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** Matcher text with a quoted value: `\` and `"` escaped. */
function quoted(value: string): string {
  return `"${value.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
}

function routeMatchers(r: RouteSpec): string[] {
  const out: string[] = [];
  const one = (label: string, values: readonly string[] | undefined): void => {
    if (!values || values.length === 0) return;
    out.push(values.length === 1 ? `${label}=${quoted(values[0]!)}` : `${label}=~${quoted(values.map(escapeRegex).join('|'))}`);
  };
  one('service', r.services);
  one('severity', r.severities);
  out.push(...(r.matchers ?? []).map((m) => m.trim()));
  return out;
}

function timing(t: { groupBy?: string[] | undefined; groupWait?: string | undefined; groupInterval?: string | undefined; repeatInterval?: string | undefined }): Record<string, unknown> {
  return {
    ...(t.groupBy ? { group_by: t.groupBy } : {}),
    ...(t.groupWait ? { group_wait: t.groupWait } : {}),
    ...(t.groupInterval ? { group_interval: t.groupInterval } : {}),
    ...(t.repeatInterval ? { repeat_interval: t.repeatInterval } : {}),
  };
}

const resolved = (v: boolean | undefined): Record<string, boolean> => ({ send_resolved: v ?? true });

/** The entries whose value is set. */
function defined(entries: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(entries).filter(([, v]) => v !== undefined));
}

type WebhookSpec = NonNullable<AlertingSpec['teams'][number]['webhook']>[number];

function webhookAuth(w: WebhookSpec): Record<string, unknown> {
  if (w.basicAuth) return { http_config: { basic_auth: { username: w.basicAuth.username, password: w.basicAuth.password } } };
  if (w.bearerToken) return { http_config: { authorization: { type: 'Bearer', credentials: w.bearerToken } } };
  return {};
}

/**
 * The Alertmanager configuration as a plain object. Secrets are left in place
 * (a `Sensitive`, or a stored spec's digest): see alerting-secrets.ts for the
 * text written to the host and the text plans show.
 */
export function renderAlertmanagerConfig(spec: AlertingSpec): Record<string, unknown> {
  const global: Record<string, unknown> = {};
  if (spec.resolveTimeout) global['resolve_timeout'] = spec.resolveTimeout;
  if (spec.smtp) {
    global['smtp_from'] = spec.smtp.from;
    global['smtp_smarthost'] = spec.smtp.smarthost;
    if (spec.smtp.authUsername) global['smtp_auth_username'] = spec.smtp.authUsername;
    if (spec.smtp.authPasswordFile) global['smtp_auth_password_file'] = spec.smtp.authPasswordFile;
    if (spec.smtp.authPassword) global['smtp_auth_password'] = spec.smtp.authPassword;
    if (spec.smtp.requireTls !== undefined) global['smtp_require_tls'] = spec.smtp.requireTls;
  }
  const routes: Record<string, unknown>[] = [];
  for (const r of spec.routes) {
    const matchers = routeMatchers(r);
    const steps = r.escalation ?? [];
    routes.push({ receiver: r.team, matchers, ...timing(r), ...(steps.length > 0 ? { continue: true } : {}) });
    steps.forEach((step, i) => {
      routes.push({
        receiver: step.team,
        matchers,
        ...timing({ ...r, groupWait: step.after }),
        ...(i < steps.length - 1 ? { continue: true } : {}),
      });
    });
  }
  const inhibit: Record<string, unknown>[] = [];
  if (spec.inhibitTicketsByPages) {
    inhibit.push({
      source_matchers: ['severity="page"', 'slo=~".+"'],
      target_matchers: ['severity="ticket"', 'slo=~".+"'],
      equal: ['slo', 'service'],
    });
  }
  for (const i of spec.inhibitRules) {
    inhibit.push({ source_matchers: i.sourceMatchers, target_matchers: i.targetMatchers, ...(i.equal ? { equal: i.equal } : {}) });
  }
  const receivers = spec.teams.map((t) => {
    const rec: Record<string, unknown> = { name: t.name };
    if (t.pagerduty) {
      rec['pagerduty_configs'] = t.pagerduty.map((p) => ({
        ...defined({ routing_key_file: p.routingKeyFile, routing_key: p.routingKey, service_key: p.serviceKey }),
        ...resolved(p.sendResolved),
      }));
    }
    if (t.slack) rec['slack_configs'] = t.slack.map((s) => ({ ...defined({ api_url_file: s.apiUrlFile, api_url: s.apiUrl }), channel: s.channel, ...resolved(s.sendResolved) }));
    if (t.opsgenie) rec['opsgenie_configs'] = t.opsgenie.map((o) => ({ ...defined({ api_key_file: o.apiKeyFile, api_key: o.apiKey }), ...resolved(o.sendResolved) }));
    if (t.email) rec['email_configs'] = t.email.map((e) => ({ to: e.to, ...resolved(e.sendResolved) }));
    if (t.webhook) rec['webhook_configs'] = t.webhook.map((w) => ({ url: w.url, ...webhookAuth(w), ...resolved(w.sendResolved) }));
    return rec;
  });
  return {
    ...(Object.keys(global).length > 0 ? { global } : {}),
    route: {
      receiver: spec.defaultTeam,
      ...timing(spec),
      ...(routes.length > 0 ? { routes } : {}),
    },
    ...(inhibit.length > 0 ? { inhibit_rules: inhibit } : {}),
    receivers,
  };
}

export function validateAlerting(resource: Resource<AlertingSpec>): Diagnostic[] {
  const { spec, address } = resource;
  const at = (path: (string | number)[]): Diagnostic['source'] => {
    try {
      return resource.positionOf(['spec', ...path]);
    } catch {
      return resource.source;
    }
  };
  const out: Diagnostic[] = [];
  const teams = new Set<string>();
  spec.teams.forEach((t, i) => {
    if (teams.has(t.name)) out.push(error(`team ${t.name} is declared twice`, { address, source: at(['teams', i, 'name']) }));
    teams.add(t.name);
    if (t.email && !spec.smtp) out.push(error(`team ${t.name} has email receivers but spec.smtp is not set`, { address, source: at(['teams', i, 'email']) }));
  });
  const known = (name: string, path: (string | number)[]): void => {
    if (!teams.has(name)) out.push(error(`unknown team ${name}`, { address, source: at(path), detail: `declared teams: ${[...teams].join(', ')}` }));
  };
  known(spec.defaultTeam, ['defaultTeam']);
  spec.routes.forEach((r, i) => {
    known(r.team, ['routes', i, 'team']);
    if (!r.services && !r.severities && !r.matchers) {
      out.push(error('a route needs services, severities or matchers: without them it catches every alert', { address, source: at(['routes', i]) }));
    }
    let previous = 0;
    (r.escalation ?? []).forEach((e, j) => {
      known(e.team, ['routes', i, 'escalation', j, 'team']);
      const ms = parseDuration(e.after) ?? 0;
      if (ms <= previous) out.push(error('escalation steps must come later and later', { address, source: at(['routes', i, 'escalation', j, 'after']) }));
      previous = ms;
    });
  });
  return out;
}
