import { stringify } from 'yaml';

/** Deterministic YAML for generated files: no line folding, no anchors, block scalars for multi-line strings. */
export function toYamlText(value: unknown): string {
  return stringify(value, { lineWidth: 0, aliasDuplicateObjects: false, blockQuote: 'literal' });
}
