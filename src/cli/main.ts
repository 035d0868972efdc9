import { Command, CommanderError } from 'commander';
import { DiagnosticsError } from '../diag/diagnostic.js';
import { StackLockedError } from '../state/store.js';
import { handleClosedPipes } from './closed-pipe.js';
import { UsageError } from './context.js';

type Register = (program: Command) => void;

/**
 * Commands load on demand: `capstan plan` never pays for the controller's HTTP
 * server, and `capstan serve` never for what it does not use. Start-up time is
 * part of every no-op run.
 */
const COMMANDS: Record<string, () => Promise<Register>> = {
  init: async () => (await import('./commands/init.js')).registerInitCommand,
  validate: async () => (await import('./commands/validate.js')).registerValidateCommand,
  plan: async () => (await import('./commands/plan.js')).registerPlanCommand,
  apply: async () => (await import('./commands/apply.js')).registerApplyCommand,
  drift: async () => (await import('./commands/drift.js')).registerDriftCommand,
  history: async () => (await import('./commands/history.js')).registerHistoryCommand,
  render: async () => (await import('./commands/render.js')).registerRenderCommand,
  test: async () => (await import('./commands/test.js')).registerTestCommand,
  schema: async () => (await import('./commands/schema.js')).registerSchemaCommand,
  docs: async () => (await import('./commands/docs.js')).registerDocsCommand,
  explain: async () => (await import('./commands/explain.js')).registerExplainCommand,
  serve: async () => (await import('./commands/serve.js')).registerServeCommand,
  token: async () => (await import('./commands/token.js')).registerTokenCommand,
  secret: async () => (await import('./commands/secret.js')).registerSecretCommand,
  policy: async () => (await import('./commands/policy.js')).registerPolicyCommand,
  // A running controller, through its HTTP API: no server code is loaded.
  stacks: async () => (await import('./commands/stacks.js')).registerStacksCommand,
  runs: async () => (await import('./commands/runs.js')).registerRunsCommand,
  audit: async () => (await import('./commands/audit.js')).registerAuditCommand,
};

/** The program with the command named in argv, or with every command (for help and unknown commands). */
export async function buildProgram(argv: readonly string[] = []): Promise<Command> {
  const program = new Command('capstan')
    .description('GitOps engine: validate, plan and apply infrastructure declared in git')
    .version('0.1.0')
    .showHelpAfterError()
    .exitOverride();
  const args = argv.slice(2);
  const named = args.find((a) => !a.startsWith('-'));
  // `--version` alone needs no command; help and unknown commands list them all.
  const versionOnly = named === undefined && (args.includes('--version') || args.includes('-V')) && !args.includes('--help') && !args.includes('-h');
  const wanted = named && named in COMMANDS ? [named] : versionOnly ? [] : Object.keys(COMMANDS);
  const registers = await Promise.all(wanted.map((name) => COMMANDS[name]!()));
  for (const register of registers) register(program);
  return program;
}

/** Commands that must not stop half-way when their output pipe closes. */
const KEEP_RUNNING_ON_CLOSED_PIPE = new Set(['apply', 'serve']);

export async function main(argv: readonly string[]): Promise<void> {
  const named = argv.slice(2).find((a) => !a.startsWith('-'));
  handleClosedPipes({ keepRunning: named !== undefined && KEEP_RUNNING_ON_CLOSED_PIPE.has(named) });
  try {
    await (await buildProgram(argv)).parseAsync([...argv]);
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
  return err instanceof Error && ['SourceError', 'ProviderError', 'NoStateStoreError', 'MissingProgramError', 'ApiError'].includes(err.name);
}
