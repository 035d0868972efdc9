/** The human plan, in the shape Terraform users read every day. */
import { structuredPatch } from 'diff';
import { formatDiagnostic, sortDiagnostics } from '../diag/diagnostic.js';
import type { FieldChange } from '../providers/provider.js';
import { digestOf, SENSITIVE_TEXT } from '../secrets/sensitive.js';
import { ACTION_SYMBOL, countActions, isChange, type Action, type Plan, type PlannedChange, type PlannedRollout } from './plan.js';
import { describeProbe } from './rollout.js';
import { describeScope } from './scope.js';
import { OFFLINE_BANNER, OFFLINE_NO_STATE } from './offline.js';

export interface Style {
  readonly color: boolean;
}

const ANSI = { green: '\u001b[32m', yellow: '\u001b[33m', red: '\u001b[31m', cyan: '\u001b[36m', bold: '\u001b[1m', dim: '\u001b[2m', reset: '\u001b[0m' };

const ACTION_COLOR: Record<Action, string> = { create: ANSI.green, update: ANSI.yellow, replace: ANSI.yellow, delete: ANSI.red, noop: '' };

const ACTION_PHRASE: Record<Action, string> = {
  create: 'will be created',
  update: 'will be updated in place',
  replace: 'must be replaced',
  delete: 'will be deleted',
  noop: 'is unchanged',
};

const MAX_CONTENT_LINES = 80;

/** The indent of a field line in the plan, and of the lines of a content diff under it. */
export const FIELD_INDENT = '      ';
export const CONTENT_INDENT = `${FIELD_INDENT}    `;

export { SENSITIVE_TEXT };
export const SENSITIVE_CHANGED_TEXT = '(sensitive value changed)';

/** A field whose values are secrets: marked so by the provider, or holding a Sensitive (or its digest). */
export function isSensitiveField(f: FieldChange): boolean {
  return f.sensitive === true || digestOf(f.before) !== undefined || digestOf(f.after) !== undefined;
}

export function renderPlanText(plan: Plan, style: Style = { color: false }): string {
  const paint = (code: string, text: string): string => (style.color && code ? `${code}${text}${ANSI.reset}` : text);
  const out: string[] = plan.offline ? [paint(ANSI.bold, OFFLINE_BANNER), ...(plan.priorSerial === 0 ? [OFFLINE_NO_STATE] : []), ''] : [];
  const diagnostics = sortDiagnostics(plan.diagnostics);
  for (const d of diagnostics) out.push(paint(d.severity === 'error' ? ANSI.red : ANSI.yellow, formatDiagnostic(d)));
  if (diagnostics.some((d) => d.severity === 'error')) {
    out.push('', 'The plan has errors: nothing can be applied until they are fixed.');
    return out.join('\n') + '\n';
  }
  const changes = plan.changes.filter((c) => isChange(c.action) || c.adopt || c.forget);
  if (diagnostics.length > 0) out.push('');
  if (plan.scope) out.push(describeScope(plan.scope), '');
  if (changes.length === 0) {
    out.push(
      plan.offline
        ? 'No changes. The spec matches the last recorded state.'
        : plan.scope
          ? 'No changes. The live state of the planned resources matches the spec.'
          : 'No changes. The live state matches the spec.',
    );
    return out.join('\n') + '\n';
  }
  out.push('Capstan will perform the following actions:', '');
  for (const c of changes) {
    out.push(...renderChange(c, paint));
    out.push('');
  }
  for (const r of plan.rollouts ?? []) out.push(...renderRollout(r), '');
  out.push(paint(ANSI.bold, summaryLine(plan)));
  return out.join('\n') + '\n';
}

/** A rollout as the plan shows it: its batches, the check between them, when it stops. */
export function renderRollout(r: PlannedRollout): string[] {
  const host = (a: string) => a.slice(a.indexOf('/') + 1);
  const checks = r.healthChecks ? Object.values(r.healthChecks) : [];
  const check = checks[0];
  return [
    `Rollout of group ${r.group}: ${r.batches.length} batch${r.batches.length === 1 ? '' : 'es'}, ${r.batches.map((b) => b.map(host).join(', ')).join(' | ')}`,
    `  between batches: ${check ? `${describeProbe(check)}${checks.length > 1 ? ' (per host)' : ''}, ${check.retries} attempt${check.retries === 1 ? '' : 's'} of ${check.timeoutMs} ms` : 'no health check; a host with a failed change counts as failed'}`,
    `  stops when more than ${r.maxFailures} host${r.maxFailures === 1 ? '' : 's'} of ${r.members} fail${r.maxFailures === 1 ? 's' : ''}`,
  ];
}

export function summaryLine(plan: Plan): string {
  const n = countActions(plan.changes);
  const refreshes = plan.changes.filter((c) => c.refresh).length;
  const refresh = refreshes > 0 ? `, ${refreshes} to refresh` : '';
  const adopts = plan.changes.filter((c) => c.adopt).length;
  const forgets = plan.changes.filter((c) => c.forget).length;
  const extra = `${adopts > 0 ? `, ${adopts} to adopt` : ''}${forgets > 0 ? `, ${forgets} to forget` : ''}`;
  return `Plan: ${n.create} to create, ${n.update - refreshes} to update${refresh}, ${n.replace} to replace, ${n.delete} to delete${extra}.`;
}

/**
 * Adopting and forgetting change nothing live, only what Capstan manages, so
 * they show as words rather than a change symbol.
 */
export function headline(c: PlannedChange): { phrase: string; symbol: string } {
  if (c.forget) return { phrase: 'will be forgotten, not deleted', symbol: 'forget' };
  if (c.adopt && c.action === 'noop') return { phrase: 'will be adopted: it already exists and matches the spec', symbol: 'adopt' };
  const phrase = c.refresh ? 'will be refreshed' : ACTION_PHRASE[c.action];
  return c.adopt ? { phrase: `will be adopted (it already exists) and ${phrase.replace(/^will be /, '')}`, symbol: `${ACTION_SYMBOL[c.action]} adopt` } : { phrase, symbol: ACTION_SYMBOL[c.action] };
}

type Paint = (code: string, text: string) => string;

function renderChange(c: PlannedChange, paint: Paint): string[] {
  const color = c.adopt || c.forget ? ANSI.cyan : ACTION_COLOR[c.action];
  const { phrase, symbol } = headline(c);
  const lines = [
    paint(ANSI.dim, `  # ${c.address} ${phrase}${c.reason ? ` (${c.reason})` : ''}`),
    `  ${paint(color, symbol)} ${paint(ANSI.bold, c.address)}${c.label ? ` ${c.label}` : ''} ${paint(ANSI.dim, `on ${c.target}`)}`,
  ];
  for (const f of c.fields) lines.push(...renderField(f, c.action, paint));
  if (c.notifies?.length) lines.push(paint(ANSI.dim, `      notifies ${c.notifies.join(', ')}`));
  if (c.notifiedBy?.length && !c.refresh) lines.push(paint(ANSI.dim, `      notified by ${c.notifiedBy.join(', ')}: this change is its reaction`));
  return lines;
}

/** The field lines of a change as the plan shows them (content as a unified diff, secrets redacted): for `drift` too. */
export function renderFieldChanges(fields: readonly FieldChange[], action: Action, style: Style = { color: false }): string[] {
  const paint: Paint = (code, text) => (style.color && code ? `${code}${text}${ANSI.reset}` : text);
  return fields.flatMap((f) => renderField(f, action, paint));
}

function renderField(f: FieldChange, action: Action, paint: Paint): string[] {
  const indent = FIELD_INDENT;
  if (isSensitiveField(f)) {
    // Never the value, nor its digest: only whether it is new or changed.
    if (f.before === undefined || f.before === null) return [`${indent}${paint(ANSI.green, '+')} ${f.path}: ${SENSITIVE_TEXT}`];
    if (f.after === undefined || f.after === null) return [`${indent}${paint(ANSI.red, '-')} ${f.path}: ${SENSITIVE_TEXT}`];
    return [`${indent}${paint(ANSI.yellow, '~')} ${f.path}: ${SENSITIVE_CHANGED_TEXT}`];
  }
  if (f.format === 'text' && (typeof f.before === 'string' || typeof f.after === 'string')) {
    const header = `${indent}${paint(ACTION_COLOR[action] || ANSI.yellow, fieldSymbol(f))} ${f.path}:`;
    return [header, ...textDiff(f.before, f.after, CONTENT_INDENT, paint)];
  }
  if (f.before === undefined || f.before === null) {
    return [`${indent}${paint(ANSI.green, '+')} ${f.path}: ${show(f.after)}`];
  }
  if (f.after === undefined || f.after === null) {
    return [`${indent}${paint(ANSI.red, '-')} ${f.path}: ${show(f.before)}`];
  }
  return [`${indent}${paint(ANSI.yellow, '~')} ${f.path}: ${show(f.before)} -> ${show(f.after)}`];
}

function fieldSymbol(f: FieldChange): string {
  if (f.before === undefined || f.before === null) return '+';
  if (f.after === undefined || f.after === null) return '-';
  return '~';
}

function textDiff(before: unknown, after: unknown, indent: string, paint: Paint): string[] {
  const a = typeof before === 'string' ? before : '';
  const b = typeof after === 'string' ? after : '';
  const patch = structuredPatch('before', 'after', a, b, '', '', { context: 3 });
  const lines: string[] = [];
  for (const hunk of patch.hunks) {
    lines.push(paint(ANSI.cyan, `@@ -${hunk.oldStart},${hunk.oldLines} +${hunk.newStart},${hunk.newLines} @@`));
    for (const l of hunk.lines) {
      const code = l.startsWith('+') ? ANSI.green : l.startsWith('-') ? ANSI.red : '';
      lines.push(paint(code, l));
    }
  }
  if (typeof before !== 'string' && before !== null && before !== undefined) lines.unshift('(live content not shown)');
  const shown = lines.slice(0, MAX_CONTENT_LINES).map((l) => indent + l);
  if (lines.length > MAX_CONTENT_LINES) shown.push(`${indent}... ${lines.length - MAX_CONTENT_LINES} more lines`);
  return shown;
}

function show(value: unknown): string {
  return typeof value === 'string' ? JSON.stringify(value) : JSON.stringify(value) ?? String(value);
}
