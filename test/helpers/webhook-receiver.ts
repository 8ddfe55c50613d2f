/**
 * A real webhook receiver on 127.0.0.1 for tests: every request is verified with the
 * `standardwebhooks` library (Webhook.verify) against the secret of its path; verified events are
 * recorded in arrival order, forged or unsigned ones counted. It can misbehave on demand:
 * 'ok' (204), 'error' (500), 'redirect' (302 to another path), 'hang' (never answers), 'down'
 * (not listening: connections are refused); and come back.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { randomBytes } from 'node:crypto';
import { Webhook } from 'standardwebhooks';

export type ReceiverMode = 'ok' | 'error' | 'redirect' | 'hang' | 'down';

/** One verified request. */
export interface ReceivedDelivery {
  readonly path: string;
  readonly webhookId: string;
  readonly timestamp: number;
  /** The verified payload: one object, or an array for batches. */
  readonly payload: unknown;
  /** The events' ids in this request, in order. */
  readonly ids: number[];
  /** The status we answered. */
  readonly status: number;
  readonly at: number;
}

/** A fresh Standard Webhooks secret ("whsec_" + base64 of 32 random bytes). */
export function newSecret(): string {
  return `whsec_${randomBytes(32).toString('base64')}`;
}

export class WebhookReceiver {
  private server?: Server;
  private readonly sockets = new Set<Socket>();
  private readonly secrets = new Map<string, Webhook>();
  private readonly modes = new Map<string, ReceiverMode>();
  port = 0;
  /** Every verified request (answered or not), in arrival order. */
  readonly deliveries: ReceivedDelivery[] = [];
  /** Requests whose signature did not verify, or that lacked the headers. */
  forged = 0;
  /** Requests per path, verified or not. */
  readonly requests = new Map<string, number>();

  /** Registers a path (e.g. "/a") with its secret; returns the URL. */
  endpoint(path: string, secret: string): string {
    this.secrets.set(path, new Webhook(secret));
    return this.url(path);
  }

  url(path: string): string {
    return `http://127.0.0.1:${this.port}${path}`;
  }

  /** Sets how `path` (or, without one, every path) answers from now on. 'down' closes the listener (all paths). */
  async setMode(mode: ReceiverMode, path?: string): Promise<void> {
    if (mode === 'down') return this.down();
    if (path) this.modes.set(path, mode);
    else { this.modes.clear(); this.modes.set('*', mode); }
    if (!this.server) await this.listen(this.port);
  }

  /** Listens on `port` (0: any free port). */
  async listen(port = 0): Promise<this> {
    const server = createServer((req, res) => this.handle(req, res));
    server.on('connection', (s) => { this.sockets.add(s); s.once('close', () => this.sockets.delete(s)); });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => { server.off('error', reject); resolve(); });
    });
    this.server = server;
    this.port = (server.address() as { port: number }).port;
    return this;
  }

  /** Stops listening and drops every connection (the port refuses until setMode/listen again). */
  async down(): Promise<void> {
    const s = this.server;
    this.server = undefined;
    if (!s) return;
    for (const sock of this.sockets) sock.destroy();
    await new Promise<void>((resolve) => s.close(() => resolve()));
  }

  async close(): Promise<void> {
    await this.down();
  }

  /** Verified event ids received on `path`, in arrival order (duplicates kept). */
  ids(path: string): number[] {
    return this.deliveries.filter((d) => d.path === path && d.status < 300).flatMap((d) => d.ids);
  }

  /** Distinct verified event ids accepted (2xx) on `path`. */
  uniqueIds(path: string): Set<number> {
    return new Set(this.ids(path));
  }

  /** True when ids first arrive in increasing order on `path` (a resend may repeat older ones). */
  inOrder(path: string): boolean {
    const seen = new Set<number>();
    let max = 0;
    for (const id of this.ids(path)) {
      if (seen.has(id)) continue;
      if (id < max) return false;
      seen.add(id);
      max = id;
    }
    return true;
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const path = (req.url ?? '/').split('?')[0]!;
    this.requests.set(path, (this.requests.get(path) ?? 0) + 1);
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      const wh = this.secrets.get(path);
      let payload: unknown;
      try {
        if (!wh) throw new Error('unknown path');
        payload = wh.verify(body, req.headers as Record<string, string>);
      } catch {
        this.forged++;
        res.writeHead(401).end('bad signature');
        return;
      }
      const mode = this.modes.get(path) ?? this.modes.get('*') ?? 'ok';
      const status = mode === 'ok' ? 204 : mode === 'error' ? 500 : mode === 'redirect' ? 302 : 0;
      const list = Array.isArray(payload) ? payload : [payload];
      const ids = list.map((p) => (p as { data: { id: number } }).data.id);
      this.deliveries.push({ path, webhookId: String(req.headers['webhook-id']), timestamp: Number(req.headers['webhook-timestamp']), payload, ids, status: status || 999, at: Date.now() });
      if (mode === 'hang') return; // never answer; the client's timeout ends it
      if (mode === 'redirect') res.writeHead(302, { location: this.url('/elsewhere') }).end();
      else if (mode === 'error') res.writeHead(500, { 'content-type': 'text/plain' }).end('receiver is broken\nright now');
      else res.writeHead(204).end();
    });
  }
}
