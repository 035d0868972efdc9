/**
 * Diagnostics are data: every layer collects them instead of throwing one at a
 * time, and the edges (CLI, API, UI) format them. Each one names, where known,
 * the resource address and the source position of the offending YAML node.
 */

export type Severity = 'error' | 'warning';

/** A position in the user's repository; line and col are 1-based. */
export interface SourcePosition {
  readonly file: string;
  readonly line: number;
  readonly col: number;
}

export interface Diagnostic {
  readonly severity: Severity;
  readonly summary: string;
  readonly detail?: string | undefined;
  readonly address?: string | undefined;
  readonly source?: SourcePosition | undefined;
}

export function error(summary: string, where: Omit<Diagnostic, 'severity' | 'summary'> = {}): Diagnostic {
  return { severity: 'error', summary, ...where };
}

export function warning(summary: string, where: Omit<Diagnostic, 'severity' | 'summary'> = {}): Diagnostic {
  return { severity: 'warning', summary, ...where };
}

export function hasErrors(diagnostics: readonly Diagnostic[]): boolean {
  return diagnostics.some((d) => d.severity === 'error');
}

/** `FILE:LINE:COL: address: message` — the one-line form every tool can jump to. */
export function formatDiagnostic(d: Diagnostic): string {
  const parts: string[] = [];
  if (d.source) parts.push(`${d.source.file}:${d.source.line}:${d.source.col}`);
  if (d.address) parts.push(d.address);
  const prefix = d.severity === 'warning' ? 'warning: ' : '';
  parts.push(prefix + d.summary + (d.detail ? ` (${d.detail})` : ''));
  return parts.join(': ');
}

/** Sorts by file, line, column, then message, so output is stable across runs. */
export function sortDiagnostics(diagnostics: readonly Diagnostic[]): Diagnostic[] {
  return [...diagnostics].sort((a, b) => {
    const fa = a.source?.file ?? '';
    const fb = b.source?.file ?? '';
    if (fa !== fb) return fa < fb ? -1 : 1;
    const la = a.source?.line ?? 0;
    const lb = b.source?.line ?? 0;
    if (la !== lb) return la - lb;
    const ca = a.source?.col ?? 0;
    const cb = b.source?.col ?? 0;
    if (ca !== cb) return ca - cb;
    return a.summary < b.summary ? -1 : a.summary > b.summary ? 1 : 0;
  });
}

/** Thrown at the edge of a layer whose result cannot exist without these diagnostics fixed. */
export class DiagnosticsError extends Error {
  constructor(
    readonly diagnostics: readonly Diagnostic[],
    options?: ErrorOptions,
  ) {
    super(diagnostics.filter((d) => d.severity === 'error').map(formatDiagnostic).join('\n') || 'invalid input', options);
    this.name = 'DiagnosticsError';
  }
}
