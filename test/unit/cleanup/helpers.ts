/** Fixtures for cleanup tests: a store in a temp dir, sessions, envelopes, corpus access. */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { silentLogger, type Logger } from '../../../src/core/log.js';
import type { Envelope } from '../../../src/core/envelope.js';
import { ManualClock } from '../../../src/core/clock.js';
import { EventBus } from '../../../src/events/bus.js';
import type { PostlineEvent } from '../../../src/events/types.js';
import type { SessionInfo } from '../../../src/core/session.js';
import { Cleanup, type CleanupConfig, type CleanupOptions } from '../../../src/cleanup/cleanup.js';
import { SqliteQueueStore } from '../../../src/spool/sqlite/store.js';
import { tempDir } from '../spool/helpers.js';

/** Project root: dist/test/unit/cleanup -> four levels up. */
export const PROJECT_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', '..');
export const CORPUS = resolve(PROJECT_ROOT, process.env.POSTLINE_CORPUS ?? join('..', 'shared', 'corpus'));

/** Corpus messages of one folder, line endings made CRLF (as smtpd hands them over). */
export function corpusMessages(folder: string, max = 8): { name: string; data: Buffer }[] {
  const dir = join(CORPUS, folder);
  if (!existsSync(dir)) return [];
  return readdirSync(dir).filter((n) => n.endsWith('.eml')).sort().slice(0, max).map((name) => {
    const raw = readFileSync(join(dir, name)).toString('latin1').replace(/\r\n|\r|\n/g, '\r\n');
    return { name, data: Buffer.from(raw, 'latin1') };
  });
}

export interface Harness {
  cleanup: Cleanup;
  store: SqliteQueueStore;
  events: PostlineEvent[];
  clock: ManualClock;
  dir: string;
  close(): Promise<void>;
}

export async function harness(
  config: Partial<CleanupConfig['limits']> = {}, logger: Logger = silentLogger(), received?: CleanupConfig['received'],
  local?: CleanupOptions['local'],
): Promise<Harness> {
  const { dir, cleanup: rmDir } = await tempDir('postline-cleanup-');
  const clock = new ManualClock(1_700_000_000_000);
  const store = new SqliteQueueStore({ dataDir: dir, minFreeBytes: 0, logger, clock });
  await store.open();
  const bus = new EventBus();
  const events: PostlineEvent[] = [];
  bus.subscribe((e) => events.push(e));
  store.setEventListener((list) => { for (const e of list) bus.emit(e); });
  const cleanup = new Cleanup({
    store, logger, clock,
    config: { hostname: 'mx.postline.test', limits: { maxMessageSize: 10 * 1024 * 1024, maxReceivedHeaders: 30, ...config }, ...(received ? { received } : {}) },
    ...(local ? { local } : {}),
  });
  return { cleanup, store, events, clock, dir, close: async () => { await store.close(); await rmDir(); } };
}

export function session(over: Partial<SessionInfo> & { role?: 'mx' | 'submission' } = {}): SessionInfo {
  const { role = 'mx', ...rest } = over;
  return {
    id: 'sess1',
    listener: { name: role, role },
    clientAddress: '192.0.2.10', clientPort: 40000, localAddress: '127.0.0.1', localPort: 25,
    heloName: 'client.example.org', esmtp: true,
    ...rest,
  };
}

export function envelope(rcpts: string[] = ['rcpt@example.net'], over: Partial<Envelope> = {}): Envelope {
  return { mailFrom: 'sender@example.com', recipients: rcpts.map((address) => ({ address })), bodyType: '8BITMIME', smtputf8: false, ...over };
}
