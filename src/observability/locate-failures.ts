/**
 * Points promtool's test failures at the AlertTest YAML they come from.
 *
 * `promtool test rules` names each failing case by its alert (`alertname: X,
 * time: 5m,`) or its expression (`expr: "...", time: 20m,`), after the test
 * group's `name: ...,` when the group has one. Each such line is prefixed with
 * the FILE:LINE:COL of the matching case in the AlertTest document and its path
 * (`tests[0].alert_rule_test[1]`); the lines naming the rendered file go.
 */
import { parseDuration } from '../providers/observability/duration.js';
import type { AlertTestSpec } from '../providers/observability/alert-test.js';
import type { Resource } from '../spec/resource.js';

type Case = { readonly group: number; readonly list: 'alert_rule_test' | 'promql_expr_test'; readonly index: number };

export function locateFailures(output: string, resource: Resource): string {
  const spec = resource.spec as AlertTestSpec;
  const groups = spec.tests ?? [];
  let groupName: string | undefined;
  const lines: string[] = [];
  for (const line of output.split('\n')) {
    if (/^\s*Unit Testing:/.test(line) || /^\s*FAILED:\s*$/.test(line)) continue;
    const named = /^\s*name: (.*),\s*$/.exec(line);
    if (named) {
      groupName = named[1];
      continue;
    }
    const alert = /^(\s*)alertname: (\S+), time: (\S+?),?\s*$/.exec(line);
    const expr = alert ? null : /^(\s*)expr: (".*"), time: (\S+?),?\s*$/.exec(line);
    const m = alert ?? expr;
    if (!m) {
      lines.push(line);
      continue;
    }
    const time = parseDuration(m[3]!);
    const text = alert ? m[2]! : unquote(m[2]!);
    const candidates: Case[] = [];
    groups.forEach((g, group) => {
      if (groupName !== undefined && g.name !== undefined && g.name !== groupName) return;
      const list = alert ? 'alert_rule_test' : 'promql_expr_test';
      (g[list] ?? []).forEach((c, index) => {
        const same = alert ? (c as { alertname: string }).alertname === text : (c as { expr: string }).expr === text;
        if (same && parseDuration(String(c.eval_time)) === time) candidates.push({ group, list, index });
      });
    });
    const found = candidates[0];
    if (found) {
      const p = resource.positionOf(['spec', 'tests', found.group, found.list, found.index]);
      lines.push(`${m[1]}${p.file}:${p.line}:${p.col}: tests[${found.group}].${found.list}[${found.index}]: ${line.trim().replace(/,$/, '')}`);
    } else {
      lines.push(line);
    }
    groupName = undefined;
  }
  return lines.join('\n');
}

/** promtool quotes the expression Go-style (%q); JSON reads the same escapes for what PromQL contains. */
function unquote(quoted: string): string {
  try {
    return JSON.parse(quoted) as string;
  } catch {
    return quoted.slice(1, -1);
  }
}
