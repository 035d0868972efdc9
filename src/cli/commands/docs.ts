import { mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Command } from 'commander';
import { defaultRegistry } from '../../providers/index.js';
import { referenceFiles } from '../../reference/generate.js';

export function registerDocsCommand(program: Command): void {
  program
    .command('docs')
    .description('write the reference: one markdown page per kind and an index (from the schemas), and the HTTP API page (from the OpenAPI document)')
    .option('--out <dir>', 'folder of the kind pages', 'docs/reference')
    .option('--api <file>', 'the API page (default: api.md next to the --out folder)')
    .action(async (options: { out: string; api?: string }) => {
      const out = path.resolve(options.out);
      const apiFile = path.resolve(options.api ?? path.join(out, '..', 'api.md'));
      const { kindPages, apiPage, isGenerated } = await referenceFiles(defaultRegistry());
      await mkdir(out, { recursive: true });
      // A page of a kind that no longer exists goes; files someone wrote by hand stay.
      for (const name of await readdir(out)) {
        if (name.endsWith('.md') && !kindPages.has(name) && isGenerated(await readFile(path.join(out, name), 'utf8'))) await rm(path.join(out, name));
      }
      for (const [name, text] of kindPages) await writeFile(path.join(out, name), text);
      await mkdir(path.dirname(apiFile), { recursive: true });
      await writeFile(apiFile, apiPage);
      process.stdout.write(`Wrote ${kindPages.size} page(s) to ${path.relative(process.cwd(), out) || '.'} and ${path.relative(process.cwd(), apiFile)}.\n`);
    });
}
