/**
 * A client of the controller's HTTP API (`capstan serve`), for the CLI's
 * remote commands. Node's fetch and nothing else: no server code is loaded.
 *
 * Every failure is an `ApiError` whose message is one line naming the server
 * and saying what to do: the server cannot be reached (refused, unknown host,
 * timeout), the token is refused (401), the role may not (403), the thing does
 * not exist (404), or the server's own error text for other answers. The token
 * is sent only in the Authorization header and never appears in a message.
 */

export interface ApiClientOptions {
  /** The server's base URL, e.g. http://127.0.0.1:7070 (a path prefix is kept). */
  readonly server: string;
  readonly token: string;
  /** Where the token came from, as messages name it (`--token-file FILE`, `$CAPSTAN_TOKEN`). */
  readonly tokenSource: string;
  /** Per request; default 30 s. */
  readonly timeoutMs?: number;
}

export class ApiError extends Error {
  constructor(
    message: string,
    /** The HTTP status, or null when no answer came. */
    readonly status: number | null,
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.name = 'ApiError';
  }
}

const DEFAULT_TIMEOUT_MS = 30_000;

export class ApiClient {
  readonly server: string;
  readonly #token: string;
  readonly #tokenSource: string;
  readonly #timeoutMs: number;

  constructor(options: ApiClientOptions) {
    this.server = normalizeServerUrl(options.server);
    this.#token = options.token;
    this.#tokenSource = options.tokenSource;
    this.#timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  }

  async get<T>(route: string): Promise<T> {
    return this.#json<T>(await this.#request('GET', route));
  }

  async getText(route: string): Promise<string> {
    return this.#request('GET', route);
  }

  async post<T>(route: string, body?: unknown): Promise<T> {
    return this.#json<T>(await this.#request('POST', route, body));
  }

  #json<T>(text: string): T {
    try {
      return JSON.parse(text) as T;
    } catch {
      throw new ApiError(`${this.server} answered with something that is not JSON: is it a Capstan controller?`, null);
    }
  }

  async #request(method: string, route: string, body?: unknown): Promise<string> {
    const url = this.server + route;
    const headers: Record<string, string> = { authorization: `Bearer ${this.#token}`, accept: 'application/json, text/plain' };
    if (body !== undefined) headers['content-type'] = 'application/json';
    let res: Response;
    let text: string;
    try {
      res = await fetch(url, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), signal: AbortSignal.timeout(this.#timeoutMs), redirect: 'manual' });
      text = await res.text();
    } catch (err) {
      throw new ApiError(`${this.server}: ${unreachable(err, this.#timeoutMs)}`, null, { cause: err });
    }
    if (res.ok) return text;
    // Never followed: the token would go wherever the redirect points.
    if (res.status >= 300 && res.status < 400) {
      throw new ApiError(`${this.server} redirects to ${res.headers.get('location') ?? 'elsewhere'}: give the URL it redirects to as --server`, res.status);
    }
    const said = serverError(text);
    switch (res.status) {
      case 401:
        throw new ApiError(`${this.server} refused the token of ${this.#tokenSource}: ${said ?? 'authentication required'}`, 401);
      case 403:
        throw new ApiError(`${this.server} refused: ${said ?? 'the token\'s role may not do this'}`, 403);
      case 404:
        throw new ApiError(said ? `${this.server}: ${said}` : `${this.server} has no ${method} ${route}: is it a Capstan controller?`, 404);
      default:
        throw new ApiError(`${this.server} answered ${res.status}: ${said ?? res.statusText}`, res.status);
    }
  }
}

/** `host:port` alone means http://host:port; a trailing slash is dropped. Throws ApiError for anything else than http(s). */
export function normalizeServerUrl(server: string): string {
  const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(server) ? server : `http://${server}`;
  let url: URL;
  try {
    url = new URL(withScheme);
  } catch {
    throw new ApiError(`"${server}" is not a server URL such as http://127.0.0.1:7070`, null);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new ApiError(`"${server}" is not an http:// or https:// URL`, null);
  if (url.username || url.password) throw new ApiError('give the server URL without user or password: the token authenticates', null);
  return `${url.protocol}//${url.host}${url.pathname.replace(/\/+$/, '')}`;
}

/** Why no answer came, in words (fetch hides the reason in `cause`). */
function unreachable(err: unknown, timeoutMs: number): string {
  if (err instanceof Error && (err.name === 'TimeoutError' || err.name === 'AbortError')) return `no answer within ${timeoutMs < 1000 ? `${timeoutMs} ms` : `${Math.round(timeoutMs / 1000)} s`}`;
  const cause = (err as { cause?: { code?: string; message?: string } } | null)?.cause;
  switch (cause?.code) {
    case 'ECONNREFUSED':
      return 'connection refused: is `capstan serve` running there?';
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return 'unknown host';
    case 'ECONNRESET':
      return 'the connection was reset';
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
      return 'host unreachable';
    default:
      return `cannot connect: ${cause?.message ?? (err instanceof Error ? err.message : String(err))}`;
  }
}

/** The `error` field of a JSON error answer, on one line. */
function serverError(text: string): string | undefined {
  try {
    const error = (JSON.parse(text) as { error?: unknown }).error;
    return typeof error === 'string' ? error.replace(/\s+/g, ' ').trim() : undefined;
  } catch {
    const line = text.trim().split('\n')[0];
    return line ? line.slice(0, 200) : undefined;
  }
}
