/**
 * Test rig for the abuse checks: a real Postline in this process (so tests read its store, metrics
 * and policy), its JSON log captured in memory, listeners `mx` (role mx) and `sub` (role submission,
 * plaintext AUTH for the test), trusted networks narrowed to 127.0.0.1/32 so clients bound to
 * 127.0.0.2 and up are checked, a user alice with a known password, and a loopback DNS server.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { validateConfig } from '../../src/config/load.js';
import { createLogger } from '../../src/core/log.js';
import { startPostline, type RunningPostline } from '../../src/main.js';
import { UserStore } from '../../src/policy/users.js';
import type { StoredEvent } from '../../src/events/record.js';
import { freePort } from './net.js';
import { startDnsServer, type DnsServerHandle, type Zones } from './dns-server.js';

export const PASSWORD = 'Secr3t-Horse-Battery-91';

export interface Rig {
  readonly running: RunningPostline;
  readonly dns: DnsServerHandle;
  readonly mx: number;
  readonly sub: number;
  /** Log lines so far (JSON text). */
  log(): string;
  events(): Promise<StoredEvent[]>;
  close(): Promise<void>;
}

/** Starts the rig; `config` is merged over the defaults (top-level keys replace). */
export async function startRig(zones: Zones, config: Record<string, unknown> = {}): Promise<Rig> {
  const dns = await startDnsServer(zones);
  const dir = mkdtempSync(join(tmpdir(), 'postline-abuse-'));
  const dataDir = join(dir, 'var');
  await new UserStore(dataDir).set('alice', PASSWORD);
  const closed = await freePort();
  const cfg = validateConfig({
    hostname: 'mx.postline.test',
    dataDir,
    log: { level: 'info', format: 'json' },
    listeners: [
      { name: 'mx', address: '127.0.0.1', port: 0, role: 'mx', tls: 'none', allowPlaintextAuth: true },
      { name: 'sub', address: '127.0.0.1', port: 0, role: 'submission', tls: 'none', allowPlaintextAuth: true },
    ],
    relay: { trustedNetworks: ['127.0.0.1/32'], localDomains: [{ domain: 'local.test', recipients: ['known', 'postmaster', 'abuse'] }] },
    delivery: {
      dns: { servers: [dns.server], timeoutMs: 300, tries: 1 },
      routes: [{ domain: 'local.test', host: '127.0.0.1', port: closed, tls: 'none' }],
      retry: { initialMs: 3_600_000, maxMs: 3_600_000, jitter: 0 },
    },
    http: null,
    ...config,
    limits: { minFreeBytes: 0, ...(config.limits as object | undefined) },
  });
  let text = '';
  const out = new PassThrough();
  out.on('data', (d: Buffer) => { text += d.toString('utf8'); });
  const running = await startPostline(cfg, { logger: createLogger({ level: 'info', format: 'json' }, out) });
  return {
    running, dns,
    mx: running.listeners.get('mx')!.port,
    sub: running.listeners.get('sub')!.port,
    log: () => text,
    events: async () => {
      await new Promise((r) => setTimeout(r, 700)); // relaxed commits become readable after the idle flush
      return running.store.readEvents({ limit: 10_000 });
    },
    close: async () => {
      await running.stop(1000);
      await dns.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
