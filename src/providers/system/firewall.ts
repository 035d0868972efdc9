/**
 * Firewall: one nftables table on a Host, owned whole by Capstan — as data
 * (sets, and chains whose rules are nft statements) or as the text of the
 * table's body.
 *
 * read   one `nft -j -s list ruleset` for the live side of every table of the
 *        batch, and one `nft -j -e -f` inside a throwaway network namespace
 *        (`unshare --net`) that shows how this host's nft reads the desired
 *        tables. Drift is any difference between the two (see nftables.ts).
 * apply  the new table is checked with `nft -c -f -`, then swapped in with
 *        `nft -f -` in ONE transaction (`table T {}; delete table T; table T {...}`):
 *        traffic never sees a half-loaded table.
 *
 * Refusal: when Capstan reaches the Host over SSH, a table that would drop new
 * connections to that SSH port (the Host's `port`, which the handle carries) on
 * the input hook (policy drop with no accept for the port, or a rule that drops
 * it) is refused at plan time and again right before apply, unless the spec
 * says `force: true`.
 *
 * What the check in the throwaway namespace cannot see: interfaces by index
 * (`iif eth0`, `oif eth0`) do not exist there, only `lo`; match interfaces by
 * name instead (`iifname "eth0"`), which also survives an interface that comes
 * and goes.
 */
import { createHash, randomBytes } from 'node:crypto';
import { posix } from 'node:path';
import { z } from 'zod';
import type { HostHandle } from '../host/host.js';
import { realPathOf } from '../host/paths.js';
import { ProviderError, type ApplyRequest, type FieldChange, type ResourceDiff, type ResourceProvider } from '../provider.js';
import { hostLabel, runChecked, tail, validateUnique } from './command.js';
import {
  parseNftJson,
  renderChain,
  sameChain,
  sameObject,
  sameRule,
  sshLockout,
  tableModel,
  type ChainModel,
  type RuleModel,
  type TableModel,
} from './nftables.js';

const TIMEOUT_MS = 60_000;
const IDENTIFIER = /^[A-Za-z][A-Za-z0-9_-]{0,63}$/;
const FAMILIES = ['inet', 'ip', 'ip6', 'arp', 'bridge', 'netdev'] as const;
const HOOKS = ['prerouting', 'input', 'forward', 'output', 'postrouting', 'ingress', 'egress'] as const;

/**
 * Why `text` could change more than its own place in the table: a brace that
 * closes the table, an unterminated string, an `include`; for a single rule
 * also a second rule (`;`, a line break) or a comment that hides the rest.
 */
export function structureProblem(text: string, single: boolean): string | null {
  let depth = 0;
  let quoted = false;
  for (let i = 0; i < text.length; i += 1) {
    const c = text[i]!;
    if (c === '\0') return 'must not contain a NUL character';
    if (quoted) {
      if (c === '"') quoted = false;
      else if (c === '\n') return 'has a string that is not closed on its line';
      continue;
    }
    if (c === '"') quoted = true;
    else if (c === '{') depth += 1;
    else if (c === '}') {
      depth -= 1;
      if (depth < 0) return 'has a "}" without its "{"';
    } else if (c === '#') {
      if (single) return 'must not contain "#": nft would read the rest as a comment (use comment "...")';
      while (i < text.length && text[i] !== '\n') i += 1;
    } else if (single && (c === '\n' || c === '\r')) return 'must be one line: one rule per entry';
    else if (single && c === ';' && depth === 0) return 'must hold one rule: write each rule as its own entry instead of using ";"';
    else if (/[a-z]/.test(c) && (i === 0 || /[\s;{]/.test(text[i - 1]!)) && /^include\b/.test(text.slice(i))) {
      return 'must not use include: the whole table is written in the spec';
    }
  }
  if (quoted) return 'has a string that is not closed';
  if (depth !== 0) return 'has a "{" without its "}"';
  return null;
}

const identifier = (what: string) =>
  z.string({ error: `${what} must be a string` }).regex(IDENTIFIER, { error: `${what} must be a name of letters, digits, "_" and "-", starting with a letter` });

const ruleSchema = z.string({ error: 'each rule must be a string of nft statements such as "tcp dport 22 accept"' }).superRefine((rule, ctx) => {
  if (rule.trim() === '') ctx.addIssue({ code: 'custom', message: 'a rule must not be empty' });
  const problem = structureProblem(rule, true);
  if (problem) ctx.addIssue({ code: 'custom', message: `rule "${rule.slice(0, 60)}" ${problem}` });
});

const chainSchema = z
  .strictObject({
    /** Attach the chain to a hook: a base chain. Without it, a regular chain for jump/goto. */
    hook: z
      .enum(HOOKS, { error: `hook must be one of ${HOOKS.join(', ')}` })
      .optional()
      .meta({ description: 'Attach the chain to this netfilter hook (a base chain); without it, a regular chain for jump and goto.', examples: ['input'] }),
    type: z
      .enum(['filter', 'nat', 'route'], { error: 'type must be filter, nat or route' })
      .optional()
      .meta({ description: 'Base chain type (needs hook); nft uses filter when absent.', examples: ['filter'] }),
    /** A number, or a standard priority name with an optional offset: "filter", "dstnat - 10". */
    priority: z
      .union(
        [
          z.number().int({ error: 'priority must be a whole number' }),
          z.string().regex(/^[a-z]+(?: [+-] \d+)?$/, { error: 'priority must be a number or a name such as "filter" or "filter + 10"' }),
        ],
        { error: 'priority must be a number or a name such as "filter"' },
      )
      .optional()
      .meta({ description: 'Base chain priority (needs hook): a number, or a standard name with an optional offset.', examples: ['filter', 'dstnat - 10', 0] }),
    policy: z
      .enum(['accept', 'drop'], { error: 'policy must be accept or drop' })
      .optional()
      .meta({ description: 'What happens to a packet no rule decided (needs hook); accept when absent.', examples: ['drop'] }),
    rules: z
      .array(ruleSchema, { error: 'rules must be a list of nft statements' })
      .default([])
      .meta({ description: 'The rules in order, one nft statement list each (no `;`, no `#` comments: use comment "...").', examples: [['ct state established,related accept', 'iifname "lo" accept', 'tcp dport { 22, 443 } accept']] }),
  })
  .superRefine((chain, ctx) => {
    if (chain.hook === undefined) {
      for (const key of ['type', 'priority', 'policy'] as const) {
        if (chain[key] !== undefined) ctx.addIssue({ code: 'custom', path: [key], message: `${key} needs a hook: only a base chain has one` });
      }
    }
  });

const elementSchema = z
  .union([z.number(), z.string().regex(/^[^\n\r\0,;{}#]+$/, { error: 'a set element must be one value such as "198.18.0.0/15" or 22 (no ",", "{", "}", ";" or "#")' })], {
    error: 'a set element must be a string or a number',
  })
  .transform(String);

const setSchema = z.strictObject({
  /** The element type: ipv4_addr, ipv6_addr, inet_service, ifname, "ipv4_addr . inet_service"... */
  type: z
    .string({ error: 'set type must be a string such as "ipv4_addr"' })
    .regex(/^[a-z0-9_]+(?: \. [a-z0-9_]+)*$/, {
      error: 'set type must be an nftables type such as "ipv4_addr" or "ipv4_addr . inet_service"',
    })
    .meta({ description: 'The element type: ipv4_addr, ipv6_addr, inet_service, ifname, or a concatenation such as "ipv4_addr . inet_service".', examples: ['ipv4_addr'] }),
  flags: z
    .array(z.enum(['constant', 'interval', 'timeout', 'dynamic'], { error: 'set flags are constant, interval, timeout and dynamic' }))
    .optional()
    .meta({ description: 'nft set flags; interval for prefixes and ranges such as 10.0.0.0/8.', examples: [['interval']] }),
  elements: z
    .array(elementSchema, { error: 'elements must be a list' })
    .optional()
    .meta({ description: 'The members of the set, exactly: elements added by hand are removed on the next apply.', examples: [['198.51.100.7', '203.0.113.0/24']] }),
});

export const firewallSchema = z
  .strictObject({
    family: z
      .enum(FAMILIES, { error: `family must be one of ${FAMILIES.join(', ')}` })
      .default('inet')
      .meta({ description: 'The nftables address family of the table; inet covers IPv4 and IPv6.', examples: ['inet'] }),
    /** The table Capstan owns whole; other tables on the host are left alone. */
    table: identifier('table').meta({ description: 'The table Capstan owns whole (letters, digits, _ and -); other tables on the host are left alone.', examples: ['capstan'] }),
    sets: z
      .record(z.string(), setSchema, { error: 'sets must be a map of set names to definitions' })
      .optional()
      .meta({ description: 'Named sets of the table, by name (rules use them as @name).' }),
    chains: z
      .record(z.string(), chainSchema, { error: 'chains must be a map of chain names to definitions' })
      .optional()
      .meta({ description: 'The chains of the table, by name; instead of ruleset.' }),
    /** Instead of sets and chains: the body of the table in nft syntax, as `nft list table` prints it between the braces. */
    ruleset: z
      .string({ error: 'ruleset must be the text of the table body' })
      .superRefine((text, ctx) => {
        const problem = structureProblem(text, false);
        if (problem) ctx.addIssue({ code: 'custom', message: `ruleset ${problem}` });
      })
      .optional()
      .meta({ description: 'Instead of sets and chains: the body of the table in nft syntax, as `nft list table` prints it between the braces.', examples: ['chain input {\n  type filter hook input priority filter; policy drop;\n  tcp dport 22 accept\n}\n'] }),
    /** Apply even when the table would drop the SSH port Capstan reaches this host through. */
    force: z
      .boolean({ error: 'force must be true or false' })
      .default(false)
      .meta({ description: 'Apply even when the table would drop the SSH port Capstan reaches this host through.', examples: [true] }),
  })
  .superRefine((spec, ctx) => {
    const data = spec.chains !== undefined || spec.sets !== undefined;
    if (data === (spec.ruleset !== undefined)) {
      ctx.addIssue({ code: 'custom', message: 'a Firewall takes either chains (and sets) or ruleset, not both and not neither' });
    }
    for (const [field, names] of [['chains', Object.keys(spec.chains ?? {})], ['sets', Object.keys(spec.sets ?? {})]] as const) {
      for (const name of names) {
        if (!IDENTIFIER.test(name)) {
          ctx.addIssue({ code: 'custom', path: [field, name], message: `${field} names are letters, digits, "_" and "-", starting with a letter: "${name}"` });
        }
      }
    }
  })
  .meta({
    examples: [
      {
        table: 'capstan',
        sets: { admins: { type: 'ipv4_addr', flags: ['interval'], elements: ['203.0.113.0/24'] } },
        chains: {
          input: { hook: 'input', type: 'filter', priority: 'filter', policy: 'drop', rules: ['ct state established,related accept', 'iifname "lo" accept', 'ip saddr @admins tcp dport 22 accept', 'tcp dport { 80, 443 } accept'] },
        },
      },
    ],
  });

export type FirewallSpec = z.infer<typeof firewallSchema>;

export interface FirewallLive {
  readonly family: string;
  readonly table: string;
  /** What the kernel holds now. */
  readonly current: TableModel;
  /** The desired table as this host's nft reads it (loaded in a throwaway namespace). */
  readonly wanted: TableModel;
  /** Digest of the definition `wanted` was made from: diff refuses to compare against another spec's. */
  readonly wantedFrom: string;
}

/** The table definition in nft syntax, under another name when asked (for the throwaway namespace). */
export function tableDefinition(spec: FirewallSpec, tableName: string = spec.table): string {
  if (spec.ruleset !== undefined) return `table ${spec.family} ${tableName} {\n${spec.ruleset}\n}\n`;
  const lines = [`table ${spec.family} ${tableName} {`];
  for (const [name, set] of Object.entries(spec.sets ?? {})) {
    lines.push(`\tset ${name} {`, `\t\ttype ${set.type}`);
    if (set.flags && set.flags.length > 0) lines.push(`\t\tflags ${set.flags.join(', ')}`);
    if (set.elements && set.elements.length > 0) lines.push(`\t\telements = { ${set.elements.join(', ')} }`);
    lines.push('\t}');
  }
  for (const [name, chain] of Object.entries(spec.chains ?? {})) {
    lines.push(`\tchain ${name} {`);
    if (chain.hook !== undefined) {
      const policy = chain.policy !== undefined ? ` policy ${chain.policy};` : '';
      lines.push(`\t\ttype ${chain.type ?? 'filter'} hook ${chain.hook} priority ${chain.priority ?? 0};${policy}`);
    }
    for (const rule of chain.rules) lines.push(`\t\t${rule}`);
    lines.push('\t}');
  }
  lines.push('}');
  return `${lines.join('\n')}\n`;
}

function digest(text: string): string {
  return createHash('sha256').update(text).digest('hex').slice(0, 16);
}

function tableLabel(spec: { family: string; table: string }): string {
  return `table ${spec.family} ${spec.table}`;
}

/** The SSH port Capstan reaches this host through (the Host's `port`), or null when it does not use SSH. */
export function sshPortOf(handle: HostHandle): number | null {
  return handle.sshPort ?? null;
}

/**
 * Writes a script to a file on the host for the duration of `use`. nft reads
 * its input from a named file (`-f -` opens /dev/stdin by name, which fails
 * when stdin is a socket, as it is for a local child process), and a file gives
 * errors with line numbers. The file lives in `<root>/run/capstan`, mode 0600,
 * and is removed afterwards.
 */
async function withScriptFile<T>(handle: HostHandle, script: string, use: (path: string) => Promise<T>): Promise<T> {
  const path = realPathOf(handle.root, `/run/capstan/nft-${process.pid}-${randomBytes(6).toString('hex')}.nft`);
  await handle.transport.mkdir(posix.dirname(path), { mode: '0700', parents: true });
  await handle.transport.writeFileAtomic(path, Buffer.from(script, 'utf8'), { mode: '0600' });
  try {
    return await use(path);
  } finally {
    await handle.transport.remove(path, { type: 'file' }).catch(() => false);
  }
}

function nftErrorText(stderr: string, file: string): string {
  const text = tail(stderr.replaceAll(`${file}:`, 'line ').replace(/\bcapstan_check_\d+\b/g, '(table)'));
  const hint = /Interface does not exist|interface not found/i.test(text)
    ? ' (Capstan checks rulesets in an empty network namespace where only lo exists: match other interfaces by name, iifname "eth0", not iif eth0)'
    : '';
  return text + hint;
}

/** Loads the desired tables into a throwaway network namespace and reads back what nft made of them. */
async function normaliseTables(handle: HostHandle, specs: readonly FirewallSpec[], signal: AbortSignal): Promise<TableModel[]> {
  const scratch = (i: number) => `capstan_check_${i}`;
  const load = (batch: readonly FirewallSpec[]) =>
    withScriptFile(handle, batch.map((s, i) => tableDefinition(s, scratch(i))).join(''), async (file) => ({
      file,
      result: await handle.transport.exec(['unshare', '--net', '--', 'nft', '-j', '-e', '-s', '-f', file], { timeoutMs: TIMEOUT_MS, signal }),
    }));
  let { file, result } = await load(specs);
  if (result.exitCode !== 0) {
    // Find which table nft refused, to name it (only on failure: one more load per table).
    for (const spec of specs) {
      ({ file, result } = await load([spec]));
      if (result.exitCode !== 0) {
        throw new ProviderError(
          `nft refuses the ruleset of Firewall ${tableLabel(spec)} on ${hostLabel(handle)}: ${nftErrorText(result.stderr || result.stdout, file)}`,
        );
      }
    }
    throw new ProviderError(`nft refuses the rulesets of the Firewalls on ${hostLabel(handle)} together: ${nftErrorText(result.stderr, file)}`);
  }
  const items = parseNftJson(result.stdout);
  return specs.map((spec, i) => {
    const model = tableModel(items, spec.family, scratch(i));
    // Items for any other table mean the text reached outside its own table.
    const stray = items.find((item) => {
      const body = Object.values((item.add as Record<string, unknown> | undefined) ?? {})[0] as { table?: unknown; name?: unknown } | undefined;
      return body !== undefined && body.table !== undefined && !/^capstan_check_\d+$/.test(String(body.table));
    });
    if (model === null || stray !== undefined) {
      throw new ProviderError(`the ruleset of Firewall ${tableLabel(spec)} defines something outside its own table`);
    }
    return { ...model, table: spec.table };
  });
}

/**
 * How this host's nft reads each desired table (one load in a throwaway
 * namespace for the batch), refusing one that would cut off Capstan's SSH port.
 */
async function desiredTables(handle: HostHandle, specs: readonly FirewallSpec[], signal: AbortSignal): Promise<Map<string, TableModel>> {
  const unique = [...new Map(specs.map((s) => [tableDefinition(s), s])).values()];
  const wanted = await normaliseTables(handle, unique, signal);
  const byDefinition = new Map(unique.map((s, i) => [tableDefinition(s), wanted[i]!]));
  const port = sshPortOf(handle);
  if (port !== null) {
    for (const spec of unique) {
      if (spec.force) continue;
      const why = sshLockout(byDefinition.get(tableDefinition(spec))!, port);
      if (why !== null) {
        throw new ProviderError(
          `refusing Firewall ${tableLabel(spec)} on ${hostLabel(handle)}: ${why}, the port Capstan's SSH connection to this host uses. ` +
            `Accept it first (for example "tcp dport ${port} accept"), or set force: true if the host stays reachable another way`,
        );
      }
    }
  }
  return byDefinition;
}

async function readFirewalls(
  handle: HostHandle,
  specs: readonly FirewallSpec[],
  signal: AbortSignal,
  known?: ReadonlyMap<string, TableModel>,
): Promise<(FirewallLive | null)[]> {
  if (specs.length === 0) return [];
  const definitions = specs.map((s) => tableDefinition(s));
  const [listed, wanted] = await Promise.all([
    runChecked(handle, ['nft', '-j', '-s', 'list', 'ruleset'], 'reading the nftables ruleset', { timeoutMs: TIMEOUT_MS, signal }),
    known && definitions.every((d) => known.has(d)) ? known : desiredTables(handle, specs, signal),
  ]);
  let items;
  try {
    items = parseNftJson(listed.stdout);
  } catch (err) {
    throw new ProviderError(`reading the nftables ruleset on ${hostLabel(handle)}: nft printed JSON Capstan cannot read`, { cause: err });
  }
  return specs.map((spec, i) => {
    const current = tableModel(items, spec.family, spec.table);
    if (current === null) return null;
    return { family: spec.family, table: spec.table, current, wanted: wanted.get(definitions[i]!)!, wantedFrom: digest(definitions[i]!) };
  });
}

/** The text of each rule as the user wrote it, by position in the chain nft made of the spec. */
function writtenRules(spec: FirewallSpec, name: string, wanted: ChainModel | undefined): (rule: RuleModel) => string | undefined {
  const written = spec.chains?.[name]?.rules;
  if (written === undefined || wanted === undefined || written.length !== wanted.rules.length) return () => undefined;
  return (rule) => {
    const at = wanted.rules.findIndex((r) => sameRule(r, rule));
    return at >= 0 ? written[at] : undefined;
  };
}

function specChainText(name: string, chain: NonNullable<FirewallSpec['chains']>[string]): string {
  const lines = [`chain ${name} {`];
  if (chain.hook !== undefined) {
    lines.push(`\ttype ${chain.type ?? 'filter'} hook ${chain.hook} priority ${chain.priority ?? 0};${chain.policy !== undefined ? ` policy ${chain.policy};` : ''}`);
  }
  for (const rule of chain.rules) lines.push(`\t${rule}`);
  lines.push('}');
  return `${lines.join('\n')}\n`;
}

function createdFields(desired: FirewallSpec): FieldChange[] {
  if (desired.ruleset !== undefined) return [{ path: 'ruleset', before: null, after: desired.ruleset, format: 'text' }];
  return [
    ...Object.entries(desired.sets ?? {}).map(([name, set]) => ({ path: `sets.${name}`, before: null, after: set })),
    ...Object.entries(desired.chains ?? {}).map(([name, chain]) => ({
      path: `chains.${name}`,
      before: null,
      after: specChainText(name, chain),
      format: 'text' as const,
    })),
  ];
}

export function diffFirewall(desired: FirewallSpec, live: FirewallLive | null, prior: FirewallSpec | null): ResourceDiff {
  const moved = prior !== null && (prior.family !== desired.family || prior.table !== desired.table);
  const movedFields: FieldChange[] = moved ? [{ path: 'table', before: tableLabel(prior), after: tableLabel(desired) }] : [];
  const movedReason = moved ? `${tableLabel(prior)} is deleted in the same transaction` : undefined;
  if (live === null) {
    const fields = [...movedFields, ...createdFields(desired)];
    return moved ? { action: 'replace', fields, reason: movedReason } : { action: 'create', fields };
  }
  if (live.wantedFrom !== digest(tableDefinition(desired))) {
    return { action: 'update', fields: [...movedFields, ...createdFields(desired)], reason: 'the live state was read for another version of this spec' };
  }
  const { current, wanted } = live;
  const fields: FieldChange[] = [...movedFields];
  if (!sameObject(current.attributes, wanted.attributes)) fields.push({ path: 'attributes', before: current.attributes, after: wanted.attributes });
  for (const key of [...new Set([...Object.keys(current.objects), ...Object.keys(wanted.objects)])].sort()) {
    if (sameObject(current.objects[key], wanted.objects[key])) continue;
    const [kind, name] = key.split(' ');
    fields.push({ path: `${kind}s.${name}`, before: current.objects[key] ?? null, after: wanted.objects[key] ?? null });
  }
  for (const name of [...new Set([...Object.keys(current.chains), ...Object.keys(wanted.chains)])].sort()) {
    const have = current.chains[name];
    const want = wanted.chains[name];
    if (sameChain(have, want)) continue;
    const names = writtenRules(desired, name, want);
    fields.push({
      path: `chains.${name}`,
      before: have ? renderChain(name, have, names) : null,
      after: want ? renderChain(name, want, names) : null,
      format: 'text',
    });
  }
  if (moved) return { action: 'replace', fields, reason: movedReason };
  return { action: fields.length > 0 ? 'update' : 'noop', fields };
}

function deletion(spec: { family: string; table: string }): string {
  // Declaring the table first makes the delete succeed whether or not it exists.
  return `add table ${spec.family} ${spec.table}\ndelete table ${spec.family} ${spec.table}\n`;
}

/** `nft -c -f` (check), then `nft -f`: one transaction, all or nothing. */
async function loadScript(handle: HostHandle, script: string, what: string, signal: AbortSignal): Promise<void> {
  await withScriptFile(handle, script, async (file) => {
    const check = await handle.transport.exec(['nft', '-c', '-f', file], { timeoutMs: TIMEOUT_MS, signal });
    if (check.exitCode !== 0) throw new ProviderError(`nft refuses ${what} on ${hostLabel(handle)}: ${nftErrorText(check.stderr || check.stdout, file)}`);
    const load = await handle.transport.exec(['nft', '-f', file], { timeoutMs: TIMEOUT_MS, signal });
    if (load.exitCode !== 0) throw new ProviderError(`nft failed to load ${what} on ${hostLabel(handle)}: ${nftErrorText(load.stderr || load.stdout, file)}`);
  });
}

async function applyFirewall(handle: HostHandle, request: ApplyRequest<FirewallSpec, FirewallLive>, signal: AbortSignal): Promise<FirewallLive | null> {
  if (request.action === 'delete') {
    const spec = request.prior ?? request.live;
    if (spec === null) throw new Error(`cannot delete ${request.address}: no last applied spec names its table`);
    await loadScript(handle, deletion(spec), `the deletion of ${tableLabel(spec)} (${request.address})`, signal);
    return null;
  }
  const desired = request.desired;
  if (desired === null) throw new Error(`${request.action} of ${request.address} needs a desired spec`);
  // Checked again right before it goes in: by this host's nft, and against the SSH port.
  const wanted = await desiredTables(handle, [desired], signal);
  let script = deletion(desired) + tableDefinition(desired);
  const prior = request.prior;
  if (prior !== null && (prior.family !== desired.family || prior.table !== desired.table)) script += deletion(prior);
  await loadScript(handle, script, `the ruleset of ${tableLabel(desired)} (${request.address})`, signal);
  const [after] = await readFirewalls(handle, [desired], signal, wanted);
  if (!after) throw new ProviderError(`${tableLabel(desired)} is missing on ${hostLabel(handle)} right after loading it (${request.address})`);
  return after;
}

export const firewallProvider: ResourceProvider<FirewallSpec, FirewallLive, HostHandle> = {
  role: 'resource',
  kind: 'Firewall',
  description:
    'One nftables table on a Host (sets and chains as data, or the table as text), checked with nft -c and swapped in atomically; refuses to lock out the SSH port Capstan uses unless forced.',
  schema: firewallSchema,
  targetKind: 'Host',
  validate: (resource, sameTarget) => validateUnique(resource, sameTarget, (s) => tableLabel(s), (label) => `nftables ${label}`, ['table']),
  read: (handle, specs, ctx) => readFirewalls(handle, specs, ctx.signal),
  diff: diffFirewall,
  apply: (handle, request, ctx) => applyFirewall(handle, request, ctx.signal),
};

