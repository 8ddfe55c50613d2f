/**
 * A real inbound parse receiver for tests: node:http on 127.0.0.1 that records every request
 * (headers, the raw body, the parsed JSON) and answers from a script: a list of answers used in
 * turn (the last one repeats), each a status with a text, or 'hang' (never answers).
 *
 * `verifySignature` checks the Standard Webhooks signature on its own (node:crypto HMAC-SHA256 of
 * "id.timestamp.body" keyed with the base64-decoded secret after "whsec_", compared with every
 * "v1,<base64>" entry of webhook-signature), independently of src/webhooks/signing.ts.
 */
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { Socket } from 'node:net';
import { createHmac, timingSafeEqual } from 'node:crypto';

/** One scripted answer. */
export type Answer = { readonly status: number; readonly text?: string } | 'hang';

/** One recorded request. */
export interface InboundRequest {
  readonly path: string;
  readonly method: string;
  readonly headers: IncomingHttpHeaders;
  readonly body: string;
  /** The body as JSON (undefined when it is not JSON). */
  readonly json: unknown;
  /** What we answered (0 for 'hang'). */
  readonly status: number;
}

/** True when `headers` carry a valid Standard Webhooks v1 signature of `body` for `secret`. */
export function verifySignature(secret: string, headers: IncomingHttpHeaders, body: string): boolean {
  const id = headers['webhook-id'];
  const ts = headers['webhook-timestamp'];
  const sig = headers['webhook-signature'];
  if (typeof id !== 'string' || typeof ts !== 'string' || typeof sig !== 'string') return false;
  const key = Buffer.from(secret.replace(/^whsec_/, ''), 'base64');
  const want = createHmac('sha256', key).update(`${id}.${ts}.${body}`, 'utf8').digest();
  return sig.split(' ').some((entry) => {
    const [version, b64] = entry.split(',', 2);
    if (version !== 'v1' || !b64) return false;
    const got = Buffer.from(b64, 'base64');
    return got.length === want.length && timingSafeEqual(got, want);
  });
}

export class InboundReceiver {
  private server?: Server;
  private readonly sockets = new Set<Socket>();
  private answers: Answer[] = [{ status: 200, text: 'ok' }];
  private turn = 0;
  port = 0;
  readonly requests: InboundRequest[] = [];

  /** The answers from now on, in turn (the last repeats). */
  script(...answers: Answer[]): this {
    this.answers = answers.length ? answers : [{ status: 200, text: 'ok' }];
    this.turn = 0;
    return this;
  }

  url(path = '/inbound'): string {
    return `http://127.0.0.1:${this.port}${path}`;
  }

  /** Listens on 127.0.0.1 (port 0: any free port). */
  async listen(port = 0): Promise<this> {
    const server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const body = Buffer.concat(chunks).toString('utf8');
        let json: unknown;
        try { json = JSON.parse(body); } catch { json = undefined; }
        const a = this.answers[Math.min(this.turn++, this.answers.length - 1)]!;
        this.requests.push({ path: (req.url ?? '/').split('?')[0]!, method: req.method ?? '', headers: req.headers, body, json, status: a === 'hang' ? 0 : a.status });
        if (a === 'hang') return;
        res.writeHead(a.status, { 'content-type': 'text/plain' }).end(a.text ?? '');
      });
    });
    server.on('connection', (s) => { this.sockets.add(s); s.once('close', () => this.sockets.delete(s)); });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => { server.off('error', reject); resolve(); });
    });
    this.server = server;
    this.port = (server.address() as { port: number }).port;
    return this;
  }

  /** Stops listening and drops every connection. */
  async close(): Promise<void> {
    const s = this.server;
    this.server = undefined;
    if (!s) return;
    for (const sock of this.sockets) sock.destroy();
    await new Promise<void>((resolve) => s.close(() => resolve()));
  }
}
