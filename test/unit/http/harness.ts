/**
 * Starts the HTTP API on 127.0.0.1 (a free port) over test doubles (doubles.ts) and real SQLite
 * key and idempotency stores in a temp data directory, with one key per scope.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { configSchema, type PostlineConfig } from '../../../src/config/schema.js';
import { silentLogger } from '../../../src/core/log.js';
import { createApiServer, type ApiServer, type ApiServerDeps, type MetricsSource } from '../../../src/http/server.js';
import { openApiStores } from '../../../src/http/sqlite-stores.js';
import type { ApiKeySpec } from '../../../src/http/api-keys.js';
import type { TlsMaterial } from '../../../src/smtpd/tls.js';
import type { MessageOrigin } from '../../../src/core/session.js';
import { TestApiStore, TestQueueAdmin, TestSubmissionSink } from './doubles.js';

export interface ApiHarness {
  readonly url: string;
  readonly dir: string;
  readonly config: PostlineConfig;
  readonly server: ApiServer;
  readonly store: TestApiStore;
  readonly sink: TestSubmissionSink;
  readonly admin: TestQueueAdmin;
  readonly stores: ReturnType<typeof openApiStores>;
  /** What the server reported as refused (deps.rejected). */
  readonly rejections: Array<{ origin: MessageOrigin; reply: string; mailFrom?: string; recipient?: string }>;
  /** Keys by name: send, read, admin, all (send+read+admin). */
  readonly key: Record<string, string>;
  /** Makes another key. */
  addKey(spec: ApiKeySpec): Promise<string>;
  /** fetch with the key's bearer token (key name, or a raw token with `raw:`). */
  call(path: string, init?: RequestInit & { key?: string; json?: unknown }): Promise<{ status: number; headers: Headers; body: any }>;
  close(): Promise<void>;
}

export async function startApi(opts: { config?: Record<string, unknown>; metrics?: MetricsSource; tls?: TlsMaterial; engagement?: ApiServerDeps['engagement']; suppressions?: NonNullable<ApiServerDeps['suppressions']> } = {}): Promise<ApiHarness> {
  const dir = mkdtempSync(join(tmpdir(), 'postline-api-'));
  const config = configSchema.parse({ hostname: 'api.postline.test', dataDir: join(dir, 'var'), limits: { minFreeBytes: 0 }, ...opts.config });
  const stores = openApiStores(config.dataDir);
  const store = new TestApiStore();
  const sink = new TestSubmissionSink(store);
  const admin = new TestQueueAdmin(store);
  const rejections: ApiHarness['rejections'] = [];
  const server = await createApiServer({
    config, sink, rejected: (origin, r) => { rejections.push({ origin, ...r }); }, store, admin, keys: stores.keys, idempotency: stores.idempotency, logger: silentLogger(),
    ...(opts.metrics ? { metrics: opts.metrics } : {}), ...(opts.tls ? { tls: opts.tls } : {}),
    ...(opts.engagement ? { engagement: opts.engagement } : {}),
    ...(opts.suppressions ? { suppressions: opts.suppressions } : {}),
  });
  const bound = await server.listen({ address: '127.0.0.1', port: 0 });
  const url = `${opts.tls ? 'https' : 'http'}://127.0.0.1:${bound.port}`;
  const key: Record<string, string> = {};
  for (const [name, scopes] of [['send', ['send']], ['read', ['read']], ['admin', ['admin']], ['all', ['send', 'read', 'admin']]] as const) {
    key[name] = (await stores.keys.create({ name, scopes: [...scopes] })).key;
  }
  const call: ApiHarness['call'] = async (path, init = {}) => {
    const headers = new Headers(init.headers);
    const k = init.key ?? 'all';
    if (k !== 'none') headers.set('authorization', `Bearer ${k.startsWith('raw:') ? k.slice(4) : key[k]}`);
    let body = init.body;
    if (init.json !== undefined) {
      headers.set('content-type', 'application/json');
      body = JSON.stringify(init.json);
    }
    const res = await fetch(url + path, { ...init, headers, body, signal: AbortSignal.timeout(20_000) });
    const text = await res.text();
    let parsed: unknown = text;
    try { parsed = JSON.parse(text); } catch { /* not JSON */ }
    return { status: res.status, headers: res.headers, body: parsed };
  };
  return {
    url, dir, config, server, store, sink, admin, stores, key, call, rejections,
    addKey: async (spec) => (await stores.keys.create(spec)).key,
    close: async () => {
      await server.close();
      await stores.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
