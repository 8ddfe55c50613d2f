/**
 * One webhook POST (also the http transport's, local/http-agent.ts) over node:http / node:https
 * with a keep-alive agent per endpoint, to the addresses the SSRF guard checked (the
 * connection's DNS lookup is pinned to them, so a name whose answer changes between the check
 * and the connection cannot reach another address).
 *
 * Why not fetch: on Node 20, fetch (undici) costs about 4-5 times the CPU of node:http per small
 * request (measured on loopback: ~450-780 us against ~90-200 us per request, client and server in
 * one process), and webhooks send one request per event by default, beside mail on the same cores.
 * Redirects are never followed (a 3xx is an answer like any other; the dispatcher counts it as a
 * failure). At most `drainBytes` of the answer are read; a longer one is cut and the socket dropped.
 */
import http from 'node:http';
import https from 'node:https';
import type { LookupFunction } from 'node:net';

/** What one POST needs. */
export interface PostRequest {
  readonly url: string;
  readonly headers: Readonly<Record<string, string>>;
  readonly body: string;
  /** Whole request deadline, ms. */
  readonly timeoutMs: number;
  /** Addresses checked by the SSRF guard for the URL's host (empty for a literal address). */
  readonly addresses: readonly { address: string; family: number }[];
  readonly signal?: AbortSignal;
}

/** The answer: status and at most `drainBytes` of the body as text. */
export interface PostAnswer {
  readonly status: number;
  readonly text: string;
}

/** Sends one POST; resolves with the answer. @throws Error with a `code` (ECONNREFUSED, ETIMEDOUT, ABORT_ERR...). */
export type PostFn = (req: PostRequest) => Promise<PostAnswer>;

/**
 * Creates a PostFn with its own keep-alive agents. `maxSockets`: connections per host and port at
 * once (default 2: a webhook endpoint's requests are sequential; the inbound parse agent sends in
 * parallel, capped by the scheduler, and passes more). `drainBytes`: the most of an answer read.
 */
export function createPoster(opts: { drainBytes?: number; maxSockets?: number } = {}): PostFn & { close(): void } {
  const drain = opts.drainBytes ?? 16 * 1024;
  const maxSockets = opts.maxSockets ?? 2;
  const agents = { 'http:': new http.Agent({ keepAlive: true, maxSockets }), 'https:': new https.Agent({ keepAlive: true, maxSockets }) };
  const post = (req: PostRequest): Promise<PostAnswer> => new Promise((resolve, reject) => {
    const u = new URL(req.url);
    const mod = u.protocol === 'https:' ? https : http;
    const pinned: LookupFunction | undefined = req.addresses.length
      ? (_host, options, cb) => {
        const all = req.addresses;
        if ((options as { all?: boolean }).all) (cb as unknown as (e: null, a: typeof all) => void)(null, all);
        else cb(null, all[0]!.address, all[0]!.family);
      }
      : undefined;
    let settled = false;
    const done = (err: Error | undefined, ans?: PostAnswer): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      req.signal?.removeEventListener('abort', onAbort);
      if (err) reject(err);
      else resolve(ans!);
    };
    const r = mod.request(u, {
      method: 'POST',
      agent: agents[u.protocol as 'http:' | 'https:'],
      headers: { ...req.headers, 'content-length': String(Buffer.byteLength(req.body)) },
      ...(pinned ? { lookup: pinned } : {}),
    }, (res) => {
      const chunks: Buffer[] = [];
      let n = 0;
      res.on('data', (c: Buffer) => {
        if (n < drain) chunks.push(c);
        n += c.length;
        if (n > drain) res.destroy(); // do not read a huge answer; the socket is not reused
      });
      const finish = (): void => done(undefined, { status: res.statusCode ?? 0, text: Buffer.concat(chunks).subarray(0, drain).toString('utf8') });
      res.on('end', finish);
      res.on('close', finish);
      res.on('error', () => finish());
    });
    const timer = setTimeout(() => {
      r.destroy(Object.assign(new Error(`no answer within ${req.timeoutMs} ms`), { code: 'ETIMEDOUT' }));
    }, req.timeoutMs);
    const onAbort = (): void => { r.destroy(Object.assign(new Error('aborted'), { code: 'ABORT_ERR' })); };
    if (req.signal?.aborted) onAbort();
    else req.signal?.addEventListener('abort', onAbort, { once: true });
    r.on('error', (err) => done(err));
    r.end(req.body);
  });
  return Object.assign(post, { close: () => { agents['http:'].destroy(); agents['https:'].destroy(); } });
}
