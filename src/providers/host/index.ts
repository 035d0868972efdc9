import type { AnyProvider } from '../provider.js';
import { directoryProvider } from './directory.js';
import { fileProvider } from './file.js';
import { hostTarget } from './host.js';
import { symlinkProvider } from './symlink.js';

/** The Host target and the kinds that live on it. */
export const hostProviders: readonly AnyProvider[] = [hostTarget, directoryProvider, fileProvider, symlinkProvider];

export { hostTarget, hostSchema, type HostHandle, type HostSpec, type LocalHostSpec, type SshHostSpec } from './host.js';
export { directoryProvider, directorySchema, type DirectoryLive, type DirectorySpec } from './directory.js';
export { fileProvider, fileSchema, type FileLive, type FileSpec, type ContentOmitted } from './file.js';
export { symlinkProvider, symlinkSchema, type SymlinkLive, type SymlinkSpec } from './symlink.js';
export { MAX_CONTENT_BYTES } from './paths.js';
