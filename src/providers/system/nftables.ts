/**
 * nftables as data: the table definition Capstan generates, the canonical
 * model both the live ruleset and the desired one are reduced to before they
 * are compared, a renderer for plans, and the check that a ruleset does not
 * cut off the SSH connection Capstan manages the host through.
 *
 * Both sides come from nft's own JSON (`nft -j`): the live table from
 * `list ruleset`, the desired one from loading it into an empty, throwaway
 * network namespace with `--echo`. So "the same" means "the same to the
 * kernel": spacing, `{22,80}` versus `{ 22, 80 }`, `priority filter` versus
 * `priority 0` all compare equal.
 */

// ---------------------------------------------------------------- the model

/** A base chain's attachment (`type filter hook input priority 0; policy drop;`). */
export interface ChainHook {
  readonly type: string | null;
  readonly hook: string;
  readonly prio: unknown;
  readonly policy: string | null;
  readonly dev: unknown;
}

export interface RuleModel {
  /** nft's JSON statements, in order. */
  readonly expr: readonly unknown[];
  readonly comment: string | null;
}

export interface ChainModel {
  readonly hook: ChainHook | null;
  readonly rules: readonly RuleModel[];
}

/** One nftables table reduced to what the kernel holds, without handles or counters. */
export interface TableModel {
  readonly family: string;
  readonly table: string;
  /** Table flags and comment, when set. */
  readonly attributes: Readonly<Record<string, unknown>>;
  readonly chains: Readonly<Record<string, ChainModel>>;
  /** Sets, maps, named counters, quotas...: `"set blocked"` → its definition (elements sorted). */
  readonly objects: Readonly<Record<string, unknown>>;
}

type Json = Record<string, unknown>;

/** Object kinds nft lists besides tables, chains, rules and set elements. */
const STATEFUL_FIELDS: Record<string, readonly string[]> = {
  counter: ['packets', 'bytes'],
  quota: ['used'],
};

function isObject(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function sortedJson(value: unknown): string {
  return JSON.stringify(sortDeep(value));
}

function sortDeep(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortDeep);
  if (isObject(value)) {
    const out: Json = {};
    for (const key of Object.keys(value).sort()) out[key] = sortDeep(value[key]);
    return out;
  }
  return value;
}

function without(obj: Json, keys: readonly string[]): Json {
  const out: Json = {};
  for (const [k, v] of Object.entries(obj)) if (!keys.includes(k)) out[k] = v;
  return out;
}

/** The `nftables` array of nft's JSON output; several documents (one per line) are joined. */
export function parseNftJson(stdout: string): Json[] {
  const text = stdout.trim();
  if (text === '') return [];
  const docs: unknown[] = [];
  try {
    docs.push(JSON.parse(text));
  } catch {
    for (const line of text.split('\n')) if (line.trim() !== '') docs.push(JSON.parse(line));
  }
  const items: Json[] = [];
  for (const doc of docs) {
    if (!isObject(doc) || !Array.isArray(doc.nftables)) throw new Error('nft printed JSON without an "nftables" array');
    for (const item of doc.nftables) if (isObject(item)) items.push(item);
  }
  return items;
}

function elementsOf(elem: unknown): unknown[] {
  if (isObject(elem) && Array.isArray(elem.set)) return elem.set;
  if (Array.isArray(elem)) return elem;
  return elem === undefined ? [] : [elem];
}

/**
 * Reduces nft JSON items (from `list ruleset`, or `{add: ...}` items from
 * `--echo`) to the model of one table; null when the table is not there.
 */
export function tableModel(items: readonly Json[], family: string, table: string): TableModel | null {
  let found = false;
  let attributes: Json = {};
  const chains = new Map<string, { hook: ChainHook | null; rules: RuleModel[] }>();
  const objects = new Map<string, Json>();
  const elements = new Map<string, unknown[]>();
  const chain = (name: string) => {
    let c = chains.get(name);
    if (!c) {
      c = { hook: null, rules: [] };
      chains.set(name, c);
    }
    return c;
  };

  for (const raw of items) {
    const item = isObject(raw.add) ? raw.add : raw;
    const [kind] = Object.keys(item);
    if (kind === undefined || kind === 'metainfo') continue;
    const body = item[kind];
    if (!isObject(body) || body.family !== family) continue;
    if (kind === 'table') {
      if (body.name !== table) continue;
      found = true;
      attributes = without(body, ['family', 'name', 'handle']);
      continue;
    }
    if (body.table !== table) continue;
    if (kind === 'chain') {
      const c = chain(String(body.name));
      if (body.hook !== undefined) {
        c.hook = {
          type: typeof body.type === 'string' ? body.type : null,
          hook: String(body.hook),
          prio: body.prio ?? null,
          policy: typeof body.policy === 'string' ? body.policy : null,
          dev: body.dev ?? null,
        };
      }
    } else if (kind === 'rule') {
      chain(String(body.chain)).rules.push({
        expr: Array.isArray(body.expr) ? body.expr : [],
        comment: typeof body.comment === 'string' ? body.comment : null,
      });
    } else if (kind === 'element') {
      const key = `set ${String(body.name)}`;
      elements.set(key, [...(elements.get(key) ?? []), ...elementsOf(body.elem)]);
    } else {
      const stateful = STATEFUL_FIELDS[kind] ?? [];
      objects.set(`${kind} ${String(body.name)}`, without(body, ['family', 'table', 'name', 'handle', ...stateful]));
    }
  }
  if (!found) return null;

  const objectModels: Record<string, unknown> = {};
  for (const key of [...objects.keys()].sort()) {
    const obj = objects.get(key)!;
    const kindOf = key.slice(0, key.indexOf(' '));
    if (kindOf === 'set' || kindOf === 'map') {
      const flags = Array.isArray(obj.flags) ? obj.flags : [];
      // Elements that rules add at run time (dynamic or timeout sets) are traffic, not configuration.
      const dynamic = flags.includes('dynamic') || flags.includes('timeout');
      const elems = [...elementsOf(obj.elem), ...(elements.get(`set ${key.slice(kindOf.length + 1)}`) ?? [])];
      const { elem: _elem, ...rest } = obj;
      objectModels[key] = dynamic || elems.length === 0 ? rest : { ...rest, elem: elems.map(sortDeep).sort((a, b) => (sortedJson(a) < sortedJson(b) ? -1 : 1)) };
    } else {
      objectModels[key] = obj;
    }
  }
  const chainModels: Record<string, ChainModel> = {};
  for (const name of [...chains.keys()].sort()) chainModels[name] = chains.get(name)!;
  return { family, table, attributes, chains: chainModels, objects: objectModels };
}

export function sameRule(a: RuleModel, b: RuleModel): boolean {
  return a.comment === b.comment && sortedJson(a.expr) === sortedJson(b.expr);
}

export function sameChain(a: ChainModel | undefined, b: ChainModel | undefined): boolean {
  if (a === undefined || b === undefined) return a === b;
  return sortedJson(a.hook) === sortedJson(b.hook) && a.rules.length === b.rules.length && a.rules.every((r, i) => sameRule(r, b.rules[i]!));
}

export function sameObject(a: unknown, b: unknown): boolean {
  return sortedJson(a) === sortedJson(b);
}

// ---------------------------------------------------------------- rendering

const BARE_META = new Set(['iif', 'oif', 'iifname', 'oifname', 'iiftype', 'oiftype', 'mark', 'skuid', 'skgid', 'pkttype', 'cpu', 'iifgroup', 'oifgroup', 'cgroup']);
const NAME_VALUED = new Set(['iif', 'oif', 'iifname', 'oifname']);

function renderLeft(left: unknown): { text: string; quoted: boolean } {
  if (isObject(left)) {
    if (isObject(left.payload) && typeof left.payload.protocol === 'string') {
      return { text: `${left.payload.protocol} ${String(left.payload.field)}`, quoted: false };
    }
    if (isObject(left.meta) && typeof left.meta.key === 'string') {
      const key = left.meta.key;
      return { text: BARE_META.has(key) ? key : `meta ${key}`, quoted: NAME_VALUED.has(key) };
    }
    if (isObject(left.ct) && typeof left.ct.key === 'string') {
      return { text: `ct ${typeof left.ct.dir === 'string' ? `${left.ct.dir} ` : ''}${left.ct.key}`, quoted: false };
    }
  }
  return { text: JSON.stringify(left), quoted: false };
}

function renderValue(value: unknown, quoted: boolean): string {
  if (typeof value === 'number') return String(value);
  if (typeof value === 'string') return quoted ? `"${value}"` : value;
  if (Array.isArray(value)) return value.map((v) => renderValue(v, quoted)).join(',');
  if (isObject(value)) {
    if (Array.isArray(value.set)) return `{ ${value.set.map((v) => renderValue(v, quoted)).join(', ')} }`;
    if (Array.isArray(value.range) && value.range.length === 2) return `${renderValue(value.range[0], quoted)}-${renderValue(value.range[1], quoted)}`;
    if (isObject(value.prefix)) return `${String(value.prefix.addr)}/${String(value.prefix.len)}`;
  }
  return JSON.stringify(value);
}

function renderStatement(stmt: unknown): string {
  if (!isObject(stmt)) return JSON.stringify(stmt);
  const [kind] = Object.keys(stmt);
  const body = kind === undefined ? undefined : stmt[kind];
  switch (kind) {
    case 'match': {
      if (!isObject(body)) break;
      const left = renderLeft(body.left);
      const op = body.op === '==' || body.op === 'in' ? '' : `${String(body.op)} `;
      return `${left.text} ${op}${renderValue(body.right, left.quoted)}`;
    }
    case 'accept':
    case 'drop':
    case 'continue':
    case 'return':
    case 'masquerade':
    case 'notrack':
      if (body === null) return kind;
      break;
    case 'reject':
      if (body === null) return 'reject';
      break;
    case 'jump':
    case 'goto':
      if (isObject(body) && typeof body.target === 'string') return `${kind} ${body.target}`;
      break;
    case 'counter':
      if (body === null) return 'counter';
      if (typeof body === 'string') return `counter name "${body}"`;
      break;
    case 'log':
      if (body === null) return 'log';
      if (isObject(body) && Object.keys(body).every((k) => k === 'prefix')) return `log prefix "${String(body.prefix)}"`;
      break;
    case 'limit':
      if (isObject(body) && typeof body.rate === 'number' && typeof body.per === 'string') {
        const over = body.inv === true ? 'over ' : '';
        const unit = typeof body.rate_unit === 'string' && body.rate_unit !== 'packets' ? ` ${body.rate_unit}` : '';
        return `limit rate ${over}${body.rate}${unit}/${body.per}`;
      }
      break;
    case 'snat':
    case 'dnat':
      if (isObject(body) && body.addr !== undefined) {
        return `${kind} to ${renderValue(body.addr, false)}${body.port !== undefined ? `:${renderValue(body.port, false)}` : ''}`;
      }
      break;
  }
  return JSON.stringify(stmt);
}

export function renderRule(rule: RuleModel): string {
  const text = rule.expr.map(renderStatement).join(' ');
  return rule.comment !== null ? `${text} comment "${rule.comment}"` : text;
}

export function renderHook(hook: ChainHook): string {
  const parts = [`type ${hook.type ?? 'filter'} hook ${hook.hook}`];
  if (hook.dev !== null) parts.push(`device ${renderValue(hook.dev, true)}`);
  parts.push(`priority ${renderValue(hook.prio, false)};`);
  if (hook.policy !== null) parts.push(`policy ${hook.policy};`);
  return parts.join(' ');
}

/**
 * A chain as lines of text, for a line diff in the plan. `names` gives the
 * text of rules the user wrote, so lines that did not change read as written.
 */
export function renderChain(name: string, chain: ChainModel, names?: (rule: RuleModel) => string | undefined): string {
  const lines = [`chain ${name} {`];
  if (chain.hook) lines.push(`\t${renderHook(chain.hook)}`);
  for (const rule of chain.rules) lines.push(`\t${names?.(rule) ?? renderRule(rule)}`);
  lines.push('}');
  return `${lines.join('\n')}\n`;
}

// ---------------------------------------------------------------- SSH lockout

type Tri = 'yes' | 'no' | 'maybe';

/** A new TCP connection to the SSH port, as the input hook sees its first packet. */
interface Probe {
  readonly port: number;
}

function matchesPort(right: unknown, port: number, sets: Readonly<Record<string, unknown>>): Tri {
  if (typeof right === 'number') return right === port ? 'yes' : 'no';
  if (typeof right === 'string') {
    if (/^\d+$/.test(right)) return Number(right) === port ? 'yes' : 'no';
    if (right.startsWith('@')) {
      const set = sets[`set ${right.slice(1)}`];
      if (isObject(set) && Array.isArray(set.elem)) return matchesPort({ set: set.elem }, port, sets);
      return 'maybe';
    }
    return right === 'ssh' ? (port === 22 ? 'yes' : 'no') : 'maybe';
  }
  if (isObject(right)) {
    if (Array.isArray(right.set)) {
      const answers = right.set.map((e) => matchesPort(e, port, sets));
      return answers.includes('yes') ? 'yes' : answers.includes('maybe') ? 'maybe' : 'no';
    }
    if (Array.isArray(right.range) && typeof right.range[0] === 'number' && typeof right.range[1] === 'number') {
      return right.range[0] <= port && port <= right.range[1] ? 'yes' : 'no';
    }
  }
  return 'maybe';
}

function matchesValue(right: unknown, wanted: readonly (string | number)[]): Tri {
  if (typeof right === 'string' || typeof right === 'number') return wanted.includes(right) ? 'yes' : 'no';
  if (Array.isArray(right)) return right.some((r) => wanted.includes(r as string)) ? 'yes' : 'no';
  if (isObject(right) && Array.isArray(right.set)) return right.set.some((r) => wanted.includes(r as string)) ? 'yes' : 'no';
  return 'maybe';
}

const OTHER_L4 = new Set(['udp', 'udplite', 'sctp', 'dccp', 'icmp', 'icmpv6', 'esp', 'ah', 'comp', 'igmp']);

function evaluateMatch(match: Json, probe: Probe, sets: Readonly<Record<string, unknown>>): Tri {
  const { left, right, op } = match;
  let answer: Tri = 'maybe';
  if (isObject(left) && isObject(left.payload)) {
    const { protocol, field } = left.payload;
    if ((protocol === 'tcp' || protocol === 'th') && field === 'dport') answer = matchesPort(right, probe.port, sets);
    // A match on another transport header implies that protocol: a TCP packet never matches it.
    else if (typeof protocol === 'string' && OTHER_L4.has(protocol)) return 'no';
    else if ((protocol === 'ip' && field === 'protocol') || (protocol === 'ip6' && field === 'nexthdr')) answer = matchesValue(right, ['tcp', 6]);
  } else if (isObject(left) && isObject(left.meta) && left.meta.key === 'l4proto') {
    answer = matchesValue(right, ['tcp', 6]);
  } else if (isObject(left) && isObject(left.ct) && left.ct.key === 'state' && left.ct.dir === undefined) {
    answer = matchesValue(right, ['new']);
  }
  if (answer === 'maybe') return 'maybe';
  if (op === '==' || op === 'in' || op === undefined) return answer;
  if (op === '!=') return answer === 'yes' ? 'no' : 'yes';
  return 'maybe';
}

type Verdict = { kind: 'accept' | 'drop' } | { kind: 'jump' | 'goto'; target: string } | { kind: 'return' } | { kind: 'unknown' } | null;

function verdictOf(stmt: Json): Verdict {
  if ('accept' in stmt) return { kind: 'accept' };
  if ('drop' in stmt || 'reject' in stmt) return { kind: 'drop' };
  if ('return' in stmt) return { kind: 'return' };
  if (isObject(stmt.jump) && typeof stmt.jump.target === 'string') return { kind: 'jump', target: stmt.jump.target };
  if (isObject(stmt.goto) && typeof stmt.goto.target === 'string') return { kind: 'goto', target: stmt.goto.target };
  if ('vmap' in stmt || 'queue' in stmt) return { kind: 'unknown' };
  return null;
}

type Outcome = { kind: 'accept' } | { kind: 'drop'; rule: RuleModel; chain: string } | { kind: 'fallthrough' };

function walkChain(model: TableModel, name: string, probe: Probe, depth: number): Outcome {
  const chain = model.chains[name];
  if (chain === undefined || depth > 16) return { kind: 'fallthrough' };
  for (const rule of chain.rules) {
    let matched: Tri = 'yes';
    let verdict: Verdict = null;
    for (const stmt of rule.expr) {
      if (!isObject(stmt)) continue;
      if (isObject(stmt.match)) {
        const m = evaluateMatch(stmt.match, probe, model.objects);
        if (m === 'no') matched = 'no';
        else if (m === 'maybe' && matched === 'yes') matched = 'maybe';
      } else if ('limit' in stmt && matched === 'yes') {
        matched = 'maybe';
      } else {
        verdict = verdictOf(stmt) ?? verdict;
      }
      if (matched === 'no') break;
    }
    if (matched === 'no' || verdict === null) continue;
    switch (verdict.kind) {
      case 'accept':
        // An accept that depends on something unknown (source address, interface) proves nothing.
        if (matched === 'yes') return { kind: 'accept' };
        break;
      case 'drop':
        // A drop that depends on something unknown (a blocklist) is not a lockout.
        if (matched === 'yes') return { kind: 'drop', rule, chain: name };
        break;
      case 'jump':
      case 'goto': {
        const inner = walkChain(model, verdict.target, probe, depth + 1);
        if (matched === 'yes' && inner.kind !== 'fallthrough') return inner;
        if (matched === 'yes' && verdict.kind === 'goto') return { kind: 'fallthrough' };
        break;
      }
      case 'return':
        if (matched === 'yes') return { kind: 'fallthrough' };
        break;
      case 'unknown':
        break;
    }
  }
  return { kind: 'fallthrough' };
}

/**
 * Why this table would drop a new TCP connection to `port` on the input hook,
 * or null when it lets it through (or does not filter input at all). Rules
 * that depend on what cannot be known here (source address, interface) never
 * count as the accept that proves the port open.
 */
export function sshLockout(model: TableModel, port: number): string | null {
  if (!['inet', 'ip', 'ip6'].includes(model.family)) return null;
  for (const [name, chain] of Object.entries(model.chains)) {
    if (chain.hook?.hook !== 'input') continue;
    const outcome = walkChain(model, name, { port }, 0);
    if (outcome.kind === 'drop') {
      return `chain ${outcome.chain} drops new connections to tcp port ${port} with the rule "${renderRule(outcome.rule)}"`;
    }
    if (outcome.kind === 'fallthrough' && chain.hook.policy === 'drop') {
      return `chain ${name} has policy drop and no rule that accepts new connections to tcp port ${port}`;
    }
  }
  return null;
}
