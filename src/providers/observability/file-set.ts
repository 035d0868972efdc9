/**
 * Delivery of generated files to a Host: the shared core of the SLO, AlertRules,
 * Alerting and Dashboard providers.
 *
 * A resource owns a small set of files (a rule file; an Alertmanager config; a
 * provisioning YAML and a dashboard JSON). Live state is, for each of them, its
 * hash and text as found on the host; drift is any difference from what the spec
 * renders to. Applying follows the same steps for every kind:
 *
 *   1. check   the new content with the backend's own tool on the host (promtool,
 *              amtool) before anything is written: a refused file never lands;
 *   2. write   each file atomically (temporary name + rename), remembering what
 *              was there before;
 *   3. activate  tell the backend (POST /-/reload) and confirm through its API
 *              that the new content is what runs;
 *   4. on a failed activation, restore the previous files, activate again, and
 *              fail with the reason.
 */
import { createHash } from 'node:crypto';
import type { FieldChange, ResourceDiff } from '../provider.js';
import { PartialReadError, ProviderError, type ReadContext } from '../provider.js';
import type { HostHandle } from '../host/host.js';
import { describePathType, type PathType } from '../../transport/transport.js';
import { ensureParent, errorCode, inspectConfined, inspectEach, pathClaim, realPathOf } from '../host/paths.js';

export interface DesiredFile {
  /** Spec path on the host (below its root). */
  readonly path: string;
  /** The text to write (for a file holding secrets: read only to write or check it; it throws when only digests are known). */
  readonly content: string;
  /**
   * The file holds secrets: its text with each one replaced by a token of its
   * keyed digest. Plans show this, and it is what is compared with the live
   * file's redacted text; `content` is never shown.
   */
  readonly shown?: string | undefined;
}

export interface LiveFile {
  readonly path: string;
  /** `file`, or what occupies the path instead. */
  readonly type: Exclude<PathType, 'absent'>;
  readonly sha256: string | null;
  /** The text, when the file is at most 1 MiB (redacted when `redacted`). */
  readonly content: string | null;
  /** Credentials in the file were replaced by tokens of their keyed digest (`sha256` is null then). */
  readonly redacted?: true;
  /** The redacted text is the canonical form of the file's content: its comments or formatting differ from that. */
  readonly reformatted?: true;
}

/** Turns a live file's text into what may be shown and stored (see alerting-secrets.ts); null: nothing of it may be. */
export type LiveRedaction = (path: string, text: string) => { text: string; redacted: boolean; reformatted: boolean } | null;

function redactedLive(file: LiveFile, redact: LiveRedaction | undefined): LiveFile {
  if (!redact || file.type !== 'file' || file.content === null) return file;
  const r = redact(file.path, file.content);
  if (r === null) return { path: file.path, type: 'file', sha256: null, content: null, redacted: true };
  if (!r.redacted) return file;
  return { path: file.path, type: 'file', sha256: null, content: r.text, redacted: true, ...(r.reformatted ? { reformatted: true as const } : {}) };
}

/** What a delivery resource looks like on its host: its files that exist, by spec path. */
export interface FileSetLive {
  readonly files: Readonly<Record<string, LiveFile>>;
}

export interface FileSetHooks {
  /** Refuses content the backend would not load (throw ProviderError with the tool's message). */
  check?(handle: HostHandle, files: readonly DesiredFile[], signal: AbortSignal): Promise<void>;
  /** Makes the backend load what is on disk now and confirms it did (throw on failure). */
  activate?(handle: HostHandle, files: readonly DesiredFile[], signal: AbortSignal): Promise<void>;
  /** After the files were removed. */
  deactivate?(handle: HostHandle, removed: readonly string[], signal: AbortSignal): Promise<void>;
}

export function sha256Hex(text: string | Buffer): string {
  return createHash('sha256').update(text).digest('hex');
}

/**
 * Reads the files of many resources in ONE inspect call. A refused path (its
 * parent leads outside the root) fails the resources that deliver it, each with
 * its own message (PartialReadError); the others are read. `redact(i)` gives how
 * the files of resource i are redacted (files that may hold secrets).
 */
export async function readFileSets(
  handle: HostHandle,
  pathsPerResource: readonly (readonly string[])[],
  signal: AbortSignal,
  located?: ReadContext['located'],
  redact?: (resourceIndex: number) => LiveRedaction | undefined,
): Promise<(FileSetLive | null)[]> {
  const all = [...new Set(pathsPerResource.flat())];
  const answers = all.length > 0 ? await inspectEach(handle, all, { content: true, signal }) : [];
  const byPath = new Map<string, LiveFile | ProviderError>();
  all.forEach((path, i) => {
    const answer = answers[i]!;
    if ('error' in answer) {
      byPath.set(path, answer.error);
      return;
    }
    const info = answer.info;
    if (info.type === 'absent') return;
    byPath.set(path, {
      path,
      type: info.type,
      sha256: info.type === 'file' ? info.sha256 : null,
      content: info.type === 'file' && info.content ? info.content.toString('utf8') : null,
    });
  });
  // Where each file really is, for the planner to find two resources writing one file through a linked directory.
  if (located) {
    const realPaths = new Map<string, string>();
    all.forEach((path, i) => {
      const answer = answers[i]!;
      if ('info' in answer && answer.info.realPath !== null) realPaths.set(path, answer.info.realPath);
    });
    pathsPerResource.forEach((paths, i) => {
      located(i, paths.flatMap((p) => (realPaths.has(p) ? [{ key: pathClaim(realPaths.get(p)!).key }] : [])));
    });
  }
  const results = pathsPerResource.map((paths, i): { live: FileSetLive | null } | { error: ProviderError } => {
    const files: Record<string, LiveFile> = {};
    const redaction = redact?.(i);
    for (const p of paths) {
      const f = byPath.get(p);
      if (f instanceof ProviderError) return { error: f };
      if (f) files[p] = redactedLive(f, redaction);
    }
    return { live: Object.keys(files).length > 0 ? { files } : null };
  });
  if (results.some((r) => 'error' in r)) throw new PartialReadError(results);
  return results.map((r) => ('live' in r ? r.live : null));
}

/** create when nothing is there; update when any file is missing or differs; noop otherwise. */
export function diffFileSet(desired: readonly DesiredFile[], live: FileSetLive | null, priorPaths: readonly string[]): ResourceDiff {
  const fields: FieldChange[] = [];
  for (const f of desired) {
    const l = live?.files[f.path];
    if (l && l.type === 'file' && sameContent(f, l)) continue;
    fields.push({
      path: f.path,
      before: l ? (l.type === 'file' ? (l.content ?? `(${l.sha256 ?? 'unreadable'})`) : `(${l.type})`) : null,
      after: f.shown ?? f.content,
      format: 'text',
    });
  }
  const wanted = new Set(desired.map((f) => f.path));
  const stale = priorPaths.filter((p) => !wanted.has(p));
  for (const p of stale) fields.push({ path: p, before: '(file)', after: null });
  if (live === null) return { action: 'create', fields };
  if (fields.length === 0) return { action: 'noop', fields: [] };
  const occupied = desired.find((f) => live.files[f.path] && live.files[f.path]!.type !== 'file');
  const reformatted = desired.find((f) => f.shown !== undefined && live.files[f.path]?.reformatted === true && live.files[f.path]!.content === f.shown);
  return {
    action: 'update',
    fields,
    reason: occupied
      ? `${occupied.path} is ${describePathType(live.files[occupied.path]!.type)}`
      : stale.length > 0
        ? `moved from ${stale.join(', ')}`
        : reformatted
          ? `${reformatted.path} differs in comments or formatting (its content holds secrets, so only its redacted form is shown)`
          : undefined,
  };
}

/** A file holding secrets compares redacted texts (keyed digests in place of the secrets); any other its sha256. */
function sameContent(desired: DesiredFile, live: LiveFile): boolean {
  if (desired.shown !== undefined) return live.redacted === true && live.reformatted !== true && live.content === desired.shown;
  return live.redacted !== true && live.sha256 === sha256Hex(desired.content);
}

async function writeText(handle: HostHandle, specPath: string, content: string | Buffer): Promise<void> {
  const real = realPathOf(handle.root, specPath);
  await ensureParent(handle, real);
  await handle.transport.writeFileAtomic(real, typeof content === 'string' ? Buffer.from(content) : content, { mode: '0644' });
}

async function removeFile(handle: HostHandle, specPath: string): Promise<boolean> {
  try {
    return await handle.transport.remove(realPathOf(handle.root, specPath), { type: 'file' });
  } catch (err) {
    if (errorCode(err) === 'ENOENT') return false;
    throw err;
  }
}

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** Writes `desired`, removes `stale`, activates; restores the previous files when activation fails. Returns the live state after. */
export async function applyFileSet(
  handle: HostHandle,
  desired: readonly DesiredFile[],
  stale: readonly string[],
  hooks: FileSetHooks,
  signal: AbortSignal,
  redact?: LiveRedaction,
): Promise<FileSetLive | null> {
  await hooks.check?.(handle, desired, signal);
  const paths = [...desired.map((f) => f.path), ...stale];
  // What was there before, read now (not at plan time) so a rollback restores the truth.
  const before = await inspectConfined(handle, paths, { content: true, signal });
  for (const [i, info] of before.entries()) {
    if (info.type !== 'absent' && info.type !== 'file') throw new ProviderError(`${paths[i]} is ${describePathType(info.type)}, not a file: remove it first`);
    if (info.type === 'file' && info.content === null) throw new ProviderError(`${paths[i]} is too large to keep a copy for rollback`);
  }
  const restore = async (): Promise<void> => {
    for (const [i, info] of before.entries()) {
      if (info.type === 'file') await writeText(handle, paths[i]!, info.content!);
      else await removeFile(handle, paths[i]!);
    }
  };
  try {
    for (const f of desired) await writeText(handle, f.path, f.content);
    for (const p of stale) await removeFile(handle, p);
  } catch (err) {
    await restore().catch(() => undefined);
    throw err;
  }
  if (hooks.activate) {
    try {
      await hooks.activate(handle, desired, signal);
    } catch (err) {
      let restored = 'the previous files were restored';
      try {
        await restore();
        // The files are back; a backend that could not be reached the first time is not told now either.
        await hooks.activate(handle, previousFiles(paths, before), signal).catch((again: unknown) => {
          if (message(again) !== message(err)) restored += `, but reloading them failed: ${message(again)}`;
        });
      } catch (again) {
        restored = `restoring the previous files failed too: ${message(again)}`;
      }
      throw new ProviderError(`${message(err)}; ${restored}`, { cause: err });
    }
  }
  const [live] = await readFileSets(handle, [desired.map((f) => f.path)], signal, undefined, () => redact);
  return live ?? null;
}

function previousFiles(paths: readonly string[], before: readonly { type: string; content: Buffer | null }[]): DesiredFile[] {
  const out: DesiredFile[] = [];
  before.forEach((info, i) => {
    if (info.type === 'file' && info.content) out.push({ path: paths[i]!, content: info.content.toString('utf8') });
  });
  return out;
}

/** Removes the files, then lets the backend forget them. */
export async function deleteFileSet(handle: HostHandle, paths: readonly string[], hooks: FileSetHooks, signal: AbortSignal): Promise<null> {
  const removed: string[] = [];
  for (const p of paths) if (await removeFile(handle, p)) removed.push(p);
  await hooks.deactivate?.(handle, removed, signal);
  return null;
}
