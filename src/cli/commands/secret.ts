/**
 * `capstan secret encrypt | edit | rotate`: age files for `{ secret: PATH }`.
 *
 * There is deliberately no `decrypt`: printing a secret puts it in terminal
 * scrollback, CI logs and shell pipes, and Capstan only ever needs a value at
 * apply time. `edit` shows it to the person who asked, in a private temporary
 * file; Debian's `age -d` remains for the rare case that needs the bytes.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, open, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Command } from 'commander';
import { checkRecipient, encryptAge, isArmored, SecretFileError } from '../../secrets/age-file.js';
import { findRecipientsFile, readRecipientsFile, RECIPIENTS_FILE } from '../../secrets/recipients.js';
import { loadKeyring, UsageError } from '../context.js';

interface RecipientOptions {
  recipient?: string[];
  recipientsFile?: string;
}

const collect = (value: string, previous: string[] = []): string[] => [...previous, value];

/** `--recipient` and `--recipients-file` together; else the nearest .capstan-recipients from `near`. */
async function recipientsFor(options: RecipientOptions, near: string): Promise<string[]> {
  const out: string[] = [];
  for (const r of options.recipient ?? []) {
    try {
      checkRecipient(r);
    } catch (err) {
      throw new UsageError((err as Error).message);
    }
    out.push(r);
  }
  let file = options.recipientsFile;
  if (file === undefined && out.length === 0) file = await findRecipientsFile(near);
  if (file !== undefined) {
    try {
      out.push(...(await readRecipientsFile(file)));
    } catch (err) {
      throw new UsageError((err as Error).message);
    }
  }
  if (out.length === 0) {
    throw new UsageError(`no recipient: pass --recipient age1... or --recipients-file FILE, or keep a ${RECIPIENTS_FILE} file in the repository`);
  }
  return [...new Set(out)];
}

/** Writes next to the target and renames over it: a reader never sees half a file. */
async function writeAtomically(file: string, data: Uint8Array): Promise<void> {
  const temp = path.join(path.dirname(file), `.${path.basename(file)}.${randomBytes(6).toString('hex')}.tmp`);
  await writeFile(temp, data, { mode: 0o644, flag: 'wx' });
  try {
    await rename(temp, file);
  } catch (err) {
    await rm(temp, { force: true });
    throw err;
  }
}

async function readStdin(): Promise<Buffer> {
  if (process.stdin.isTTY) process.stderr.write('Reading the secret from the terminal; end it with Ctrl-D.\n');
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

async function decryptFile(file: string, identity: string | undefined): Promise<{ plain: Uint8Array; armored: boolean }> {
  const keyring = await loadKeyring({ identity });
  let data: Buffer;
  try {
    data = await readFile(file);
  } catch (err) {
    throw new UsageError(`cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  try {
    return { plain: await keyring.decrypt(data), armored: isArmored(data) };
  } catch (err) {
    if (err instanceof SecretFileError) throw new UsageError(`${file}: ${err.message}`);
    throw err;
  }
}

/** $VISUAL, $EDITOR, else vi; split on spaces (`code --wait`), run without a shell. */
function editorCommand(): string[] {
  const value = (process.env['VISUAL'] || process.env['EDITOR'] || 'vi').trim();
  return value.split(/\s+/);
}

function runEditor(file: string): Promise<void> {
  const [program, ...args] = editorCommand();
  return new Promise((resolve, reject) => {
    const child = spawn(program!, [...args, file], { stdio: 'inherit' });
    child.once('error', (err) => reject(new UsageError(`cannot start the editor ${program}: ${err.message}`)));
    child.once('exit', (code, signal) => {
      if (code === 0) resolve();
      else reject(new UsageError(`the editor ${program} ${signal ? `was killed by ${signal}` : `exited with status ${code}`}: the secret was not changed`));
    });
  });
}

/** Overwrites the plaintext before it is removed (best effort: a copy-on-write filesystem may keep old blocks). */
async function shred(file: string): Promise<void> {
  try {
    const size = (await stat(file)).size;
    const handle = await open(file, 'r+');
    try {
      await handle.write(Buffer.alloc(size), 0, size, 0);
      await handle.sync();
    } finally {
      await handle.close();
    }
  } catch {
    // gone already, or never written
  }
}

export function registerSecretCommand(program: Command): void {
  const secret = program.command('secret').description('age-encrypted secrets for { secret: PATH } (encrypt, edit, rotate)');

  secret
    .command('encrypt')
    .description('encrypt a value (stdin, or --from-file) for the recipients; writes an armored age file')
    .option('--recipient <age1...>', 'a recipient (repeatable)', collect)
    .option('--recipients-file <file>', `recipients, one a line (default: the nearest ${RECIPIENTS_FILE})`)
    .option('--from-file <file>', 'read the value from this file instead of stdin')
    .option('--out <file>', 'write the age file here (default: stdout)')
    .action(async (options: RecipientOptions & { fromFile?: string; out?: string }) => {
      const recipients = await recipientsFor(options, options.out ? path.dirname(path.resolve(options.out)) : process.cwd());
      let plain: Buffer;
      if (options.fromFile) {
        try {
          plain = await readFile(options.fromFile);
        } catch (err) {
          throw new UsageError(`cannot read ${options.fromFile}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
        }
      } else {
        plain = await readStdin();
      }
      const encrypted = await encryptAge(plain, recipients);
      plain.fill(0);
      if (options.out) {
        await writeAtomically(path.resolve(options.out), encrypted);
        process.stderr.write(`Encrypted for ${recipients.length} recipient(s) into ${options.out}. Reference it as { secret: ${options.out} } (relative to the YAML file).\n`);
      } else {
        process.stdout.write(encrypted);
      }
    });

  secret
    .command('edit <file>')
    .description('decrypt FILE into a private temporary file, open $EDITOR, re-encrypt it for the recipients (a new FILE when absent)')
    .option('--identity <file>', 'age identity file (default: $CAPSTAN_AGE_IDENTITY_FILE, then $CAPSTAN_AGE_IDENTITY)')
    .option('--recipient <age1...>', 'a recipient (repeatable)', collect)
    .option('--recipients-file <file>', `recipients, one a line (default: the nearest ${RECIPIENTS_FILE})`)
    .action(async (file: string, options: RecipientOptions & { identity?: string }) => {
      const target = path.resolve(file);
      // Recipients first: a missing list is found before the secret is shown.
      const recipients = await recipientsFor(options, path.dirname(target));
      let exists = true;
      try {
        await stat(target);
      } catch {
        exists = false;
      }
      const before = exists ? await decryptFile(target, options.identity) : { plain: new Uint8Array(), armored: true };
      const dir = await mkdtemp(path.join(os.tmpdir(), 'capstan-secret-'));
      const plainFile = path.join(dir, path.basename(target).replace(/\.age$/, '') || 'secret');
      try {
        await writeFile(plainFile, before.plain, { mode: 0o600, flag: 'wx' });
        await runEditor(plainFile);
        const after = await readFile(plainFile);
        if (exists && Buffer.from(before.plain).equals(after)) {
          process.stderr.write(`${file}: unchanged.\n`);
          return;
        }
        await writeAtomically(target, await encryptAge(after, recipients, { armor: before.armored }));
        after.fill(0);
        process.stderr.write(`${file}: ${exists ? 're-encrypted' : 'created'} for ${recipients.length} recipient(s).\n`);
      } finally {
        await shred(plainFile);
        await rm(dir, { recursive: true, force: true });
      }
    });

  secret
    .command('rotate <files...>')
    .description('re-encrypt every FILE for a new recipient list (each is decrypted with your identity first)')
    .option('--identity <file>', 'age identity file (default: $CAPSTAN_AGE_IDENTITY_FILE, then $CAPSTAN_AGE_IDENTITY)')
    .option('--recipient <age1...>', 'a recipient (repeatable)', collect)
    .option('--recipients-file <file>', `the new recipients, one a line (default: the nearest ${RECIPIENTS_FILE})`)
    .action(async (files: string[], options: RecipientOptions & { identity?: string }) => {
      const recipients = await recipientsFor(options, process.cwd());
      // Decrypt every file before writing any: one that cannot be read leaves all as they were.
      const decrypted = [];
      for (const f of files) decrypted.push({ file: path.resolve(f), shown: f, ...(await decryptFile(f, options.identity)) });
      for (const d of decrypted) {
        await writeAtomically(d.file, await encryptAge(d.plain, recipients, { armor: d.armored }));
        Buffer.from(d.plain.buffer, d.plain.byteOffset, d.plain.byteLength).fill(0);
      }
      process.stderr.write(`Re-encrypted ${files.length} file(s) for ${recipients.length} recipient(s).\n`);
    });
}
