/** The persistent inspect helper, run here as a local child process (no SSH), against LocalTransport. */
import { execa, type ResultPromise } from 'execa';
import * as fs from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { LocalTransport } from './local.js';
import { encodeHelperRequest, helperCommand, parseInspectOutput, parseRealpathOutput } from './remote-inspect.js';
import { InspectHelper } from './ssh-helper.js';

let dir: string;
let child: ResultPromise | undefined;
const local = new LocalTransport();

function startHelper(argv = helperCommand()): { helper: InspectHelper; poisoned: Error[] } {
  const [file, ...args] = argv;
  const proc = execa(file!, args, { stdin: 'pipe', stdout: 'pipe', buffer: false, reject: false });
  child = proc;
  const poisoned: Error[] = [];
  const helper = new InspectHelper(proc.stdin!, proc.stdout!, 'the test helper', (err) => {
    poisoned.push(err);
    proc.kill('SIGKILL');
  });
  void proc.then((r) => helper.fail(new Error(`exited ${r.exitCode}`)));
  return { helper, poisoned };
}

beforeAll(async () => {
  dir = await fs.realpath(await fs.mkdtemp(join(tmpdir(), 'capstan-helper-')));
  await fs.mkdir(join(dir, 'root/d'), { recursive: true });
  await fs.writeFile(join(dir, 'root/d/f'), 'hello\n');
  await fs.symlink('..', join(dir, 'root/up'));
});
afterEach(async () => {
  child?.kill('SIGKILL');
  await child;
  child = undefined;
});
afterAll(async () => {
  await fs.rm(dir, { recursive: true, force: true });
});

describe('InspectHelper', () => {
  it('answers many requests, sent at once, in order and exactly as LocalTransport', async () => {
    const { helper } = startHelper();
    await helper.ready;
    const root = join(dir, 'root');
    const batches = [
      ['d', 'd/f', 'up/escape', 'missing'],
      ['d/f'],
      ['up', 'd/f/under-a-file'],
    ].map((names) => names.map((n) => join(root, n)));
    const answers = await Promise.all(
      batches.map((paths) => helper.request(encodeHelperRequest('inspect', { confineTo: root, maxContentBytes: 100, content: true }, paths), 10_000)),
    );
    for (const [i, paths] of batches.entries()) {
      expect(parseInspectOutput(answers[i]!, paths, 100)).toEqual(await local.inspect(paths, { content: true, maxContentBytes: 100, confineTo: root }));
    }
    const real = await helper.request(encodeHelperRequest('realpath', { confineTo: '', maxContentBytes: 0, content: false }, [join(root, 'up/root/d/x')]), 10_000);
    expect(parseRealpathOutput(real, 1)).toEqual([join(root, 'd/x')]);
  });

  it('fails every waiting request when the helper ends, and later ones at once', async () => {
    const { helper } = startHelper(['sh', '-c', 'printf "CAPSTAN-HELPER1\\n"; exec sleep 30']);
    await helper.ready;
    const waiting = helper.request(encodeHelperRequest('inspect', { confineTo: '', maxContentBytes: 0, content: false }, ['/']), 10_000);
    child!.kill('SIGKILL');
    await expect(waiting).rejects.toThrow(/exited/);
    await expect(helper.request(Buffer.alloc(4), 10_000)).rejects.toThrow(/exited/);
  });

  it('poisons itself when a request times out (its answer would come out of step)', async () => {
    const { helper, poisoned } = startHelper(['sh', '-c', 'printf "CAPSTAN-HELPER1\\n"; exec sleep 30']);
    await helper.ready;
    await expect(helper.request(encodeHelperRequest('inspect', { confineTo: '', maxContentBytes: 0, content: false }, ['/']), 200)).rejects.toThrow(
      /did not answer within 200 ms/,
    );
    expect(poisoned).toHaveLength(1);
    expect(helper.failed).toBe(true);
  });

  it('refuses a helper that does not greet', async () => {
    const { helper } = startHelper(['sh', '-c', 'echo "python3: command not found"; exec sleep 30']);
    await expect(helper.ready).rejects.toThrow(/did not start \(got "python3: command not found/);
  });
});
