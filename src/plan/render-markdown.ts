/**
 * The plan as a pull-request comment (GitHub-flavoured Markdown). Field lines
 * and content diffs come from the text plan's renderer, so secrets are redacted
 * exactly as there. A plan too large for one comment is shortened to fit: the
 * content diffs go first, then the per-resource lines; the summary and the
 * warnings stay, and nothing is ever cut inside a code fence.
 */
import { formatDiagnostic, sortDiagnostics } from '../diag/diagnostic.js';
import { OFFLINE_BANNER, OFFLINE_NO_STATE } from './offline.js';
import { isChange, type Plan, type PlannedChange } from './plan.js';
import { describeScope } from './scope.js';
import { CONTENT_INDENT, FIELD_INDENT, headline, renderFieldChanges, renderRollout, summaryLine } from './render-text.js';

/** GitHub's limit on the body of an issue or pull-request comment, in characters. */
export const COMMENT_LIMIT = 65_536;

/** The first line of every plan comment: CI finds its earlier comment by it and updates it in place. */
export const PLAN_COMMENT_MARKER = '<!-- capstan-plan -->';

export interface MarkdownOptions {
  /** Kinds whose delete or replace loses data (the provider capability `destructiveDelete`). */
  readonly destructiveKinds?: ReadonlySet<string>;
  /** Where the full plan was written as JSON (`--out-json FILE`): named when the comment is shortened. */
  readonly fullPlanFile?: string | undefined;
  /** Characters the comment may take: GitHub's limit unless told. */
  readonly budget?: number;
}

/** A part of the comment: a head, items that may be left off from the end (each whole), a tail. */
interface Section {
  readonly head: string;
  readonly items: readonly string[];
  readonly tail: string;
  /** The line that replaces the items left off. */
  readonly more: (left: number) => string;
}

export function renderPlanMarkdown(plan: Plan, options: MarkdownOptions = {}): string {
  const budget = options.budget ?? COMMENT_LIMIT;
  const destructive = options.destructiveKinds ?? new Set<string>();
  const top = header(plan);
  const sections: Section[] = [];
  const diagnostics = diagnosticsSection(plan);
  if (diagnostics) sections.push(diagnostics);
  const failed = plan.diagnostics.some((d) => d.severity === 'error');
  const changes = plan.changes.filter((c) => isChange(c.action) || c.adopt || c.forget);
  let closing = '';
  if (failed) closing = 'The plan has errors: nothing can be applied until they are fixed.\n';
  else if (changes.length === 0) closing = 'No changes. The live state matches the spec.\n';
  else {
    sections.push(summarySection(plan, changes));
    const warnings = warningSection(changes, destructive);
    if (warnings) sections.push(warnings);
    const rollouts = rolloutSection(plan);
    if (rollouts) sections.push(rollouts);
  }
  const resources = failed ? [] : changes;
  const full = top + sections.map(whole).join('') + closing + resourcesSection(resources.map(detailed));
  if (full.length <= budget) return full;

  // Too large: the notice first, then as much of each section as fits, in order.
  const notice =
    '> [!NOTE]\n> This plan was shortened to fit in one comment' +
    (options.fullPlanFile ? `; the full plan is in the JSON artefact ${code(options.fullPlanFile)}.\n\n` : '; run `capstan plan` for all of it.\n\n');
  let left = budget - top.length - notice.length - closing.length;
  let body = '';
  for (const s of sections) {
    const fitted = fit(s, left);
    body += fitted;
    left -= fitted.length;
  }
  body += closing + fitResources(resources, left);
  const shortened = top + notice + body;
  // Only a budget smaller than the header and notice themselves gets here.
  return shortened.length <= budget ? shortened : (PLAN_COMMENT_MARKER + '\n' + notice).slice(0, budget);
}

function header(plan: Plan): string {
  const s = plan.source;
  const from = s.commit ? `commit ${code(s.commit)}` : 'a directory that is not a git commit';
  const ref = s.ref ? ` on ${code(s.ref)}` : '';
  const dirty = s.dirty ? ', with uncommitted changes' : '';
  // An offline or scoped plan says so in every format: a reviewer must not take it for a full live plan.
  const offline = plan.offline ? `> [!IMPORTANT]\n> ${OFFLINE_BANNER}.${plan.priorSerial === 0 ? ` ${OFFLINE_NO_STATE}` : ''}\n\n` : '';
  const scope = plan.scope ? `${escapeText(describeScope(plan.scope))}\n\n` : '';
  return `${PLAN_COMMENT_MARKER}\n### Capstan plan for stack ${code(plan.stack)}\n\nComputed from ${from}${ref}${dirty}.\n\n${offline}${scope}`;
}

function diagnosticsSection(plan: Plan): Section | undefined {
  const diagnostics = sortDiagnostics(plan.diagnostics);
  if (diagnostics.length === 0) return undefined;
  const errors = diagnostics.filter((d) => d.severity === 'error').length;
  const warnings = diagnostics.length - errors;
  const counts = [errors ? plural(errors, 'error') : '', warnings ? plural(warnings, 'warning') : ''].filter(Boolean).join(', ');
  const lines = diagnostics.map((d) => formatDiagnostic(d) + '\n');
  const fence = fenceFor(lines.join(''));
  return {
    head: `${errors ? '> [!CAUTION]' : '> [!WARNING]'}\n> The plan has ${counts}.\n\n${fence}text\n`,
    items: lines,
    tail: `${fence}\n\n`,
    more: (left) => `... ${plural(left, 'more diagnostic')}\n`,
  };
}

type Column = 'create' | 'update' | 'replace' | 'delete' | 'other';
const COLUMNS: readonly Column[] = ['create', 'update', 'replace', 'delete', 'other'];

/** Adopting and forgetting change nothing live: they count as `other`. */
function columnOf(c: PlannedChange): Column {
  return c.action === 'noop' ? 'other' : c.action;
}

function summarySection(plan: Plan, changes: readonly PlannedChange[]): Section {
  const byKind = new Map<string, Record<Column, number>>();
  for (const c of changes) {
    const row = byKind.get(c.kind) ?? { create: 0, update: 0, replace: 0, delete: 0, other: 0 };
    row[columnOf(c)] += 1;
    byKind.set(c.kind, row);
  }
  const rows = [...byKind.entries()]
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([kind, row]) => `| ${cell(plan.stack)} | ${cell(kind)} | ${COLUMNS.map((col) => row[col]).join(' | ')} |\n`);
  return {
    head: `**${summaryLine(plan)}**\n\n| Stack | Kind | Create | Update | Replace | Delete | Other |\n|---|---|--:|--:|--:|--:|--:|\n`,
    items: rows,
    tail: '\n',
    more: (left) => `| … | ${plural(left, 'more kind')} | | | | | |\n`,
  };
}

function warningSection(changes: readonly PlannedChange[], destructive: ReadonlySet<string>): Section | undefined {
  const risky = changes.filter((c) => c.action === 'delete' || c.action === 'replace');
  if (risky.length === 0) return undefined;
  const losing = risky.filter((c) => destructive.has(c.kind)).length;
  const items = risky.map((c) => {
    const loses = destructive.has(c.kind) ? ` — **${c.kind} is a destructive kind: this loses what it holds**` : '';
    return `> - **${c.action}** ${code(c.address)} on ${code(c.target)}${c.reason ? ` (${escapeText(c.reason)})` : ''}${loses}\n`;
  });
  const deletes = risky.filter((c) => c.action === 'delete').length;
  const what = [deletes ? `deletes ${plural(deletes, 'resource')}` : '', risky.length - deletes ? `replaces ${plural(risky.length - deletes, 'resource')}` : '']
    .filter(Boolean)
    .join(' and ');
  return {
    head: `> [!WARNING]\n> This plan ${what}${losing ? `, ${losing} of a kind whose delete loses data` : ''}:\n`,
    items,
    tail: '\n',
    more: (left) => `> - … and ${left} more\n`,
  };
}

/** The rollouts as the text plan shows them, in a text block. */
function rolloutSection(plan: Plan): Section | undefined {
  const items = (plan.rollouts ?? []).map((r) => renderRollout(r).join('\n') + '\n');
  if (items.length === 0) return undefined;
  const fence = fenceFor(items.join(''));
  return { head: `${fence}text\n`, items, tail: `${fence}\n\n`, more: (left) => `... ${plural(left, 'more rollout')}\n` };
}

/** One resource, collapsible, with its field changes and content diffs. */
function detailed(c: PlannedChange): { full: string; brief: string } {
  const { phrase, symbol } = headline(c);
  const where = `${c.label ? ` ${escapeHtml(c.label)}` : ''} on ${escapeHtml(c.target)}`;
  const reason = c.reason ? ` (${escapeHtml(c.reason)})` : '';
  const brief = `- ${code(symbol)} ${code(c.address)}${c.label ? ` ${escapeText(c.label)}` : ''} on ${code(c.target)}: ${phrase}${c.reason ? ` (${escapeText(c.reason)})` : ''}\n`;
  const lines = diffLines(c);
  if (lines.length === 0) return { full: brief, brief };
  const body = lines.map((l) => l + '\n').join('');
  const fence = fenceFor(body);
  const summary = `<code>${escapeHtml(symbol)}</code> <b>${escapeHtml(c.address)}</b>${where}: ${phrase}${reason}`;
  return { full: `<details><summary>${summary}</summary>\n\n${fence}diff\n${body}${fence}\n\n</details>\n\n`, brief };
}

/** The text plan's field lines, moved to the left margin so that `+` and `-` lines colour as a diff. */
function diffLines(c: PlannedChange): string[] {
  return c.fields.flatMap((f) =>
    renderFieldChanges([f], c.action).map((l) => (l.startsWith(CONTENT_INDENT) ? l.slice(CONTENT_INDENT.length) : l.startsWith(FIELD_INDENT) ? l.slice(FIELD_INDENT.length) : l)),
  );
}

const RESOURCES_HEAD = '#### Resources\n\n';

function resourcesSection(entries: readonly { full: string }[]): string {
  return entries.length ? RESOURCES_HEAD + entries.map((e) => e.full).join('') : '';
}

/**
 * Every resource gets at least its one line while those fit; the first ones
 * keep their diffs as long as the rest still get their line.
 */
function fitResources(changes: readonly PlannedChange[], left: number): string {
  if (changes.length === 0) return '';
  const entries = changes.map(detailed);
  const room = left - RESOURCES_HEAD.length;
  const briefs = entries.reduce((n, e) => n + e.brief.length, 0);
  if (briefs <= room) {
    let used = briefs;
    const chosen = entries.map((e) => {
      if (used - e.brief.length + e.full.length > room) return e.brief;
      used += e.full.length - e.brief.length;
      return e.full;
    });
    return RESOURCES_HEAD + chosen.join('');
  }
  const fitted = fit({ head: RESOURCES_HEAD, items: entries.map((e) => e.brief), tail: '', more: (n) => `- … and ${plural(n, 'more resource')}\n` }, left);
  return fitted;
}

function whole(s: Section): string {
  return s.head + s.items.join('') + s.tail;
}

/** As much of a section as fits in `left` characters: whole items, then a line for the rest; nothing if not even that fits. */
function fit(s: Section, left: number): string {
  const all = whole(s);
  if (all.length <= left) return all;
  const reserve = s.head.length + s.tail.length + s.more(s.items.length).length;
  if (reserve > left) return '';
  let used = reserve;
  let kept = 0;
  while (kept < s.items.length && used + s.items[kept]!.length <= left) used += s.items[kept++]!.length;
  return s.head + s.items.slice(0, kept).join('') + s.more(s.items.length - kept) + s.tail;
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

/** A fence longer than any run of backticks in the body, so the body can never close it. */
function fenceFor(body: string): string {
  const longest = Math.max(0, ...(body.match(/`+/g) ?? []).map((run) => run.length));
  return '`'.repeat(Math.max(3, longest + 1));
}

/** An inline code span that no backtick in the text can end early. */
function code(text: string): string {
  const clean = text.replace(/[\r\n]+/g, ' ');
  const longest = Math.max(0, ...(clean.match(/`+/g) ?? []).map((run) => run.length));
  const ticks = '`'.repeat(longest + 1);
  const pad = clean.startsWith('`') || clean.endsWith('`') ? ' ' : '';
  return `${ticks}${pad}${clean}${pad}${ticks}`;
}

function cell(text: string): string {
  return code(text).replace(/\|/g, '\\|');
}

function escapeHtml(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/[\r\n]+/g, ' ');
}

/** Text outside code: no HTML, no line breaks that would end a list item or a quote. */
function escapeText(text: string): string {
  return escapeHtml(text).replace(/([\\`*_[\]|])/g, '\\$1');
}
