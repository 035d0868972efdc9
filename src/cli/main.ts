import { Command, CommanderError } from 'commander';
import { DiagnosticsError } from '../diag/diagnostic.js';
import { StackLockedError } from '../state/store.js';
import { registerApplyCommand } from './commands/apply.js';
import { registerDriftCommand } from './commands/drift.js';
import { registerHistoryCommand } from './commands/history.js';
import { registerPlanCommand } from './commands/plan.js';
import { registerRenderCommand } from './commands/render.js';
import { registerSchemaCommand } from './commands/schema.js';
import { registerServeCommand } from './commands/serve.js';
import { registerTestCommand } from './commands/test.js';
import { registerTokenCommand } from './commands/token.js';
import { registerValidateCommand } from './commands/validate.js';
import { UsageError } from './context.js';

export function buildProgram(): Command {
  const program = new Command('capstan')
    .description('GitOps engine: validate, plan and apply infrastructure declared in git')
    .version('0.1.0')
    .showHelpAfterError()
    .exitOverride();
  registerValidateCommand(program);
  registerPlanCommand(program);
  registerApplyCommand(program);
  registerDriftCommand(program);
  registerHistoryCommand(program);
  registerRenderCommand(program);
  registerTestCommand(program);
  registerSchemaCommand(program);
  registerServeCommand(program);
  registerTokenCommand(program);
  return program;
}

export async function main(argv: readonly string[]): Promise<void> {
  try {
    await buildProgram().parseAsync([...argv]);
  } catch (err) {
    if (err instanceof CommanderError) {
      process.exitCode = err.exitCode === 0 ? 0 : 1;
      return;
    }
    const expected = err instanceof UsageError || err instanceof StackLockedError || err instanceof DiagnosticsError || isUserFacing(err);
    process.stderr.write(`Error: ${err instanceof Error ? err.message : String(err)}\n`);
    if (!expected && process.env.CAPSTAN_DEBUG && err instanceof Error && err.stack) process.stderr.write(err.stack + '\n');
    process.exitCode = 1;
  }
}

function isUserFacing(err: unknown): boolean {
  return err instanceof Error && (err.name === 'SourceError' || err.name === 'ProviderError');
}
