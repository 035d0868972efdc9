/** A state URL as errors, logs and recovery files may show it (no driver is loaded here). */

/** The URL without user, password or query parameters other than `schema`. */
export function describeStateUrl(url: string): string {
  try {
    const parsed = new URL(url);
    const schema = parsed.searchParams.get('schema');
    return `${parsed.protocol}//${parsed.host}${parsed.pathname}${schema !== null ? `?schema=${schema}` : ''}`;
  } catch {
    return url.replace(/^([a-z][a-z0-9+.-]*:\/\/)[^@/]*@/i, '$1***@').replace(/\?.*$/, '');
  }
}
