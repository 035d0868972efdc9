/**
 * Every generated reference file: the kind pages (docs/reference/) and the API
 * page (docs/api.md). `capstan docs` writes them; reference.test.ts and
 * api-page.test.ts fail when the committed ones differ.
 */
import type { ProviderRegistry } from '../providers/registry.js';
import { ENVELOPE_DESCRIPTIONS } from '../spec/json-schema.js';
import { GENERATED_NOTE_START, referencePages } from './kind-page.js';
import { documentKinds } from './kinds.js';

/** The kind pages by file name, the index (README.md) first. */
export async function kindReferencePages(registry: ProviderRegistry): Promise<Map<string, string>> {
  const envelope = Object.entries(ENVELOPE_DESCRIPTIONS).map(([key, description]) => ({ key, description }));
  return referencePages(await documentKinds(registry), envelope);
}

/** docs/api.md, from the OpenAPI document of a server built with no stacks. */
export async function apiReferencePage(): Promise<string> {
  const [{ openApiDocument }, { apiPage }] = await Promise.all([import('../server/openapi-document.js'), import('./api-page.js')]);
  return apiPage(await openApiDocument());
}

export async function referenceFiles(registry: ProviderRegistry): Promise<{ kindPages: Map<string, string>; apiPage: string; isGenerated: (text: string) => boolean }> {
  const [kindPages, apiPage] = await Promise.all([kindReferencePages(registry), apiReferencePage()]);
  return { kindPages, apiPage, isGenerated: (text) => text.startsWith(GENERATED_NOTE_START) };
}
