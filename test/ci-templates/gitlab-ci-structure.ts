/**
 * A structural check of a .gitlab-ci.yml (GitLab publishes no offline validator):
 * known top-level keywords, known job keywords, `extends` that resolve, every job in a
 * declared stage with a script, and rules that are lists of known clauses.
 */

const TOP_LEVEL = new Set(['default', 'include', 'stages', 'variables', 'workflow', 'spec', 'image', 'services', 'cache', 'before_script', 'after_script']);
const JOB_KEYWORDS = new Set([
  'after_script', 'allow_failure', 'artifacts', 'before_script', 'cache', 'coverage', 'dependencies', 'environment', 'extends',
  'hooks', 'id_tokens', 'identity', 'image', 'inherit', 'interruptible', 'needs', 'pages', 'parallel', 'release', 'resource_group',
  'retry', 'rules', 'script', 'secrets', 'services', 'stage', 'tags', 'timeout', 'trigger', 'variables', 'when',
]);
const DEFAULT_KEYWORDS = new Set(['after_script', 'artifacts', 'before_script', 'cache', 'hooks', 'id_tokens', 'image', 'interruptible', 'retry', 'services', 'tags', 'timeout']);
const RULE_CLAUSES = new Set(['if', 'changes', 'exists', 'when', 'allow_failure', 'variables', 'needs', 'start_in', 'interruptible']);
const WHEN = new Set(['on_success', 'on_failure', 'always', 'never', 'manual', 'delayed']);

type Mapping = Record<string, unknown>;
const isMapping = (v: unknown): v is Mapping => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Every problem found, one line each, naming the job; empty when the file passes. */
export function gitlabCiProblems(doc: unknown): string[] {
  if (!isMapping(doc)) return ['the file is not a mapping'];
  const problems: string[] = [];
  const stages = Array.isArray(doc.stages) ? doc.stages.filter((s): s is string => typeof s === 'string') : [];
  if (stages.length === 0) problems.push('stages: missing or empty');
  if (isMapping(doc.default)) {
    for (const key of Object.keys(doc.default)) if (!DEFAULT_KEYWORDS.has(key)) problems.push(`default: unknown keyword ${key}`);
  }
  const jobs = Object.entries(doc).filter(([key]) => !TOP_LEVEL.has(key));
  const hidden = new Map(jobs.filter(([key]) => key.startsWith('.')));
  for (const [name, job] of jobs) {
    if (!isMapping(job)) {
      problems.push(`${name}: not a mapping (and not a top-level keyword)`);
      continue;
    }
    for (const key of Object.keys(job)) if (!JOB_KEYWORDS.has(key)) problems.push(`${name}: unknown keyword ${key}`);
    const resolved = resolveExtends(name, job, hidden, problems);
    if (name.startsWith('.')) continue;
    if (typeof resolved.stage !== 'string' || !stages.includes(resolved.stage)) problems.push(`${name}: stage ${String(resolved.stage)} is not in stages [${stages.join(', ')}]`);
    if (!Array.isArray(resolved.script) && resolved.trigger === undefined) problems.push(`${name}: no script`);
    if (resolved.rules !== undefined) problems.push(...rulesProblems(name, resolved.rules));
    if (typeof resolved.when === 'string' && !WHEN.has(resolved.when)) problems.push(`${name}: when: ${resolved.when} is not one of ${[...WHEN].join(', ')}`);
  }
  return problems;
}

function resolveExtends(name: string, job: Mapping, hidden: Map<string, unknown>, problems: string[]): Mapping {
  const parents = job.extends === undefined ? [] : Array.isArray(job.extends) ? job.extends : [job.extends];
  let merged: Mapping = {};
  for (const parent of parents) {
    const template = typeof parent === 'string' ? hidden.get(parent) : undefined;
    if (!isMapping(template)) problems.push(`${name}: extends ${String(parent)}, which is not a hidden job in this file`);
    else merged = { ...merged, ...template };
  }
  return { ...merged, ...job };
}

function rulesProblems(name: string, rules: unknown): string[] {
  if (!Array.isArray(rules)) return [`${name}: rules is not a list`];
  return rules.flatMap((rule, i) => {
    if (!isMapping(rule)) return [`${name}: rules[${i}] is not a mapping`];
    const found: string[] = [];
    for (const key of Object.keys(rule)) if (!RULE_CLAUSES.has(key)) found.push(`${name}: rules[${i}]: unknown clause ${key}`);
    if (rule.if !== undefined && typeof rule.if !== 'string') found.push(`${name}: rules[${i}].if is not a string`);
    if (rule.when !== undefined && !WHEN.has(String(rule.when))) found.push(`${name}: rules[${i}].when: ${String(rule.when)} is not one of ${[...WHEN].join(', ')}`);
    return found;
  });
}
