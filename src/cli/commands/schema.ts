import type { Command } from 'commander';
import { defaultRegistry } from '../../providers/index.js';
import { specJsonSchema } from '../../spec/json-schema.js';

export function registerSchemaCommand(program: Command): void {
  program
    .command('schema')
    .description('print the JSON Schema of a Capstan document, for editors (yaml-language-server)')
    .action(async () => {
      process.stdout.write(JSON.stringify(specJsonSchema(await defaultRegistry().loadAll()), null, 2) + '\n');
    });
}
