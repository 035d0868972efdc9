/**
 * A reader that stops early (`capstan history | head -1`) closes the pipe, and
 * the next write to stdout or stderr fails with EPIPE. A command that only
 * prints then exits at once, quietly, with the exit code it had so far. One
 * that changes things (apply, serve) keeps going, so its changes finish and are
 * recorded, and prints nothing more to that stream.
 */
export function handleClosedPipes(options: { keepRunning: boolean }): void {
  for (const stream of [process.stdout, process.stderr]) {
    stream.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code !== 'EPIPE') throw err;
      if (!options.keepRunning) process.exit(typeof process.exitCode === 'number' ? process.exitCode : 0);
    });
  }
}
