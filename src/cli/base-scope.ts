/**
 * `plan --base REF`: loads the spec as it was at REF (from the git repository
 * that holds the spec directory, or from `--repo`) and selects what the diff to
 * the spec being planned touches (see plan/scope.ts).
 */
import type { ScopeSelection } from '../plan/scope.js';
import type { LoadedSpec, SourceOptions } from './context.js';

export async function selectByBase(spec: LoadedSpec, base: string, options: SourceOptions): Promise<ScopeSelection | undefined> {
  const [{ checkoutCommitOf }, { resolveSource }, { loadStack }, { selectTouched }, { hasErrors }] = await Promise.all([
    import('../source/commit-tree.js'),
    import('../source/source.js'),
    import('../spec/load.js'),
    import('../plan/scope.js'),
    import('../diag/diagnostic.js'),
  ]);
  let tree: { dir: string; commit: string; remove?: () => Promise<void> };
  if (options.repo) {
    const info = await resolveSource({ repo: options.repo, ref: base, path: options.path ?? '.' });
    tree = { dir: info.dir, commit: info.commit! };
  } else {
    tree = await checkoutCommitOf(spec.source.dir, base);
  }
  try {
    const before = await loadStack(tree.dir, spec.registry, { keyring: spec.keyring });
    if (hasErrors(before.diagnostics)) {
      // Nothing can be told apart against a spec that does not load: plan everything, and say why.
      process.stderr.write(`Warning: the spec at ${base} (${tree.commit.slice(0, 12)}) has errors, so --base cannot narrow the plan: planning every resource.\n`);
      return undefined;
    }
    return selectTouched(before, spec.stack, spec.registry, { ref: base, commit: tree.commit });
  } finally {
    await tree.remove?.();
  }
}
