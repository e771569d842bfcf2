// A small client for the controller's HTTP API (used by the CLI): JSON requests with the bearer
// token, errors that say whether the API was unreachable or refused the request.
export class ApiClientError extends Error {
  /** status 0: the API could not be reached at all. */
  constructor(readonly status: number, message: string) { super(message); }
}

export interface ApiClientOptions { base: string; token?: string; timeoutMs?: number }

export class ApiClient {
  readonly base: string;
  constructor(private readonly opts: ApiClientOptions) {
    let u: URL;
    try { u = new URL(opts.base); } catch { throw new ApiClientError(0, `--api: not a URL: ${JSON.stringify(opts.base)}`); }
    if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new ApiClientError(0, `--api: expected an http:// or https:// URL, got ${opts.base}`);
    this.base = u.toString().replace(/\/+$/, '');
  }

  get<T = any>(path: string): Promise<T> { return this.json<T>('GET', path); }
  post<T = any>(path: string, body: unknown): Promise<T> { return this.json<T>('POST', path, body); }
  delete<T = any>(path: string): Promise<T> { return this.json<T>('DELETE', path); }

  async json<T>(method: string, path: string, body?: unknown): Promise<T> {
    const res = await this.fetch(method, path, body, AbortSignal.timeout(this.opts.timeoutMs ?? 15000));
    const text = await res.text();
    let parsed: any;
    try { parsed = JSON.parse(text); } catch { parsed = undefined; }
    if (!res.ok) throw new ApiClientError(res.status, parsed?.error ?? `${res.status} ${res.statusText}`);
    if (parsed === undefined) throw new ApiClientError(res.status, `the API answered ${path} with something that is not JSON`);
    return parsed as T;
  }

  /** A streaming GET (capture): resolves once the response headers arrived with status 200. */
  async stream(path: string, signal?: AbortSignal): Promise<Response> {
    const res = await this.fetch('GET', path, undefined, signal);
    if (!res.ok) {
      const text = await res.text().catch(() => '');
      let msg: string | undefined;
      try { msg = JSON.parse(text).error; } catch { msg = undefined; }
      throw new ApiClientError(res.status, msg ?? `${res.status} ${res.statusText}`);
    }
    return res;
  }

  private async fetch(method: string, path: string, body: unknown, signal?: AbortSignal): Promise<Response> {
    const headers: Record<string, string> = { Accept: 'application/json' };
    if (this.opts.token) headers.Authorization = `Bearer ${this.opts.token}`;
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    try {
      return await fetch(this.base + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), signal });
    } catch (e) {
      const err = e as Error & { cause?: { code?: string; message?: string } };
      if (err.name === 'TimeoutError') throw new ApiClientError(0, `the API at ${this.base} did not answer in time`);
      if (err.name === 'AbortError') throw err;
      throw new ApiClientError(0, `cannot reach the API at ${this.base}: ${err.cause?.code ?? err.cause?.message ?? err.message} (is the controller running with api.enabled? see --api)`);
    }
  }
}
