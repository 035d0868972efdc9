import type { Command } from 'commander';
import { defaultRegistry } from '../../providers/index.js';
import { explainField, explainKind, findField, parseExplainPath } from '../../reference/explain.js';
import { documentedKindNames, documentKinds, findKindName } from '../../reference/kinds.js';
import { UsageError } from '../context.js';

export function registerExplainCommand(program: Command): void {
  program
    .command('explain <path>')
    .description('describe a kind or one of its fields, e.g. `capstan explain File` or `capstan explain File.spec.mode`')
    .action(async (arg: string) => {
      const registry = defaultRegistry();
      const { kind: asked, path } = parseExplainPath(arg);
      const kind = findKindName(registry, asked);
      if (!kind) throw new UsageError(`no kind "${asked}"; the kinds are ${documentedKindNames(registry).join(', ')}`);
      const [doc] = await documentKinds(registry, [kind]);
      if (path === '') {
        process.stdout.write(explainKind(doc!));
        return;
      }
      const field = findField(doc!, path);
      if (!field) throw new UsageError(`${kind} has no field spec.${path}; its fields are ${doc!.fields.filter((f) => !/[.[]/.test(f.path)).map((f) => f.path).join(', ')}`);
      process.stdout.write(explainField(doc!, field));
    });
}
