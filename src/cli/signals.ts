/**
 * SIGINT/SIGTERM: the first stops new work (in-flight changes finish and are
 * recorded); a second one exits at once. The exit code says which signal.
 */
export interface Interrupts {
  readonly signal: AbortSignal;
  /** 130 for SIGINT, 143 for SIGTERM, undefined when not interrupted. */
  exitCode(): number | undefined;
  dispose(): void;
}

export function trapInterrupts(onFirst: (name: string) => void): Interrupts {
  const controller = new AbortController();
  let code: number | undefined;
  const handler = (name: NodeJS.Signals): void => {
    if (controller.signal.aborted) {
      process.stderr.write(`\n${name} again: exiting now without waiting for in-flight changes\n`);
      process.exit(name === 'SIGINT' ? 130 : 143);
    }
    code = name === 'SIGINT' ? 130 : 143;
    onFirst(name);
    controller.abort(new Error(`interrupted by ${name}`));
  };
  process.on('SIGINT', handler);
  process.on('SIGTERM', handler);
  return {
    signal: controller.signal,
    exitCode: () => code,
    dispose: () => {
      process.off('SIGINT', handler);
      process.off('SIGTERM', handler);
    },
  };
}
