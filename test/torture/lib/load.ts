/**
 * Load generator for the fault suite: a few workers submit numbered messages over SMTP to a
 * Postline that may die at any moment. Each message has a unique recipient and Message-ID
 * (`m<N>@sink.test`, `<torture-N@origin.test>`), so a receiver's dumps say which arrived. A message
 * counts as answered only when its final reply was 250; cut-off or refused ones may be missing.
 * Every loop is bounded by `maxMessages` and by stop().
 */
import { RawSmtp } from '../../helpers/raw-smtp.js';
import { sleep } from './profile.js';

/** What the generator sends for message number n. */
export interface Planned {
  readonly from: string;
  readonly to: string;
  readonly data: Buffer;
}

/** Default plan: every 10th message (n % 10 === 7) goes to bounce.test, from its own sender at origin.test. */
export function plan(n: number): Planned {
  const bounce = n % 10 === 7;
  const to = bounce ? `b${n}@bounce.test` : `m${n}@sink.test`;
  const from = bounce ? `s${n}@origin.test` : 'load@origin.test';
  const data = Buffer.from(`From: <${from}>\r\nTo: <${to}>\r\nSubject: torture ${n}\r\nMessage-ID: <torture-${n}@origin.test>\r\n\r\nmessage ${n}\r\n${'x'.repeat(200)}\r\n`);
  return { from, to, data };
}

/** The reply code that decided a pipelined transaction: the first of MAIL, RCPT, DATA that failed, else the final one. */
export function decidingCode(r: { mail: { code: number }; rcpts: { code: number }[]; data?: { code: number }; final?: { code: number } }): number {
  if (r.mail.code !== 250) return r.mail.code;
  const bad = r.rcpts.find((x) => x.code >= 300);
  if (bad) return bad.code;
  if (r.data && r.data.code !== 354) return r.data.code;
  return r.final?.code ?? 0;
}

export interface LoadOptions {
  /** Port to submit to (read at each connection: it may change across restarts). */
  readonly port: () => number;
  readonly concurrency: number;
  readonly maxMessages: number;
  /** Local address to connect from (default 127.0.0.1). */
  readonly localAddress?: string;
  /** Messages per connection before QUIT. */
  readonly perConnection?: number;
  readonly plan?: (n: number) => Planned;
  /** Per-reply timeout, ms. */
  readonly replyTimeoutMs?: number;
}

export class LoadGenerator {
  /** Message numbers answered 250. */
  readonly answered = new Set<number>();
  /** Message numbers refused with 4xx/5xx (reply code by number). */
  readonly refused = new Map<number, number>();
  /** Message numbers whose transaction was cut off (no final reply). */
  readonly cut = new Set<number>();
  private next = 0;
  private stopping = false;
  private workers: Promise<void>[] = [];

  constructor(private readonly o: LoadOptions) {}

  /** Messages started so far. */
  get sent(): number { return this.next; }

  start(): void {
    for (let i = 0; i < this.o.concurrency; i++) this.workers.push(this.worker());
  }

  /** Stops after the transactions in progress; resolves when every worker has ended. */
  async stop(): Promise<void> {
    this.stopping = true;
    await Promise.all(this.workers);
  }

  private async worker(): Promise<void> {
    const per = this.o.perConnection ?? 5;
    const make = this.o.plan ?? plan;
    const timeout = this.o.replyTimeoutMs ?? 10_000;
    while (!this.stopping && this.next < this.o.maxMessages) {
      let c: RawSmtp | undefined;
      try {
        const opened = await RawSmtp.open(this.o.port(), { localAddress: this.o.localAddress ?? '127.0.0.1' });
        c = opened.c;
        if (opened.greeting.code !== 220) throw new Error(`greeting ${opened.greeting.code}`);
        await c.cmd('EHLO load.test', timeout);
        for (let k = 0; k < per && !this.stopping && this.next < this.o.maxMessages; k++) {
          const n = this.next++;
          const p = make(n);
          try {
            const r = await c.send(p.from, [p.to], p.data, '', timeout);
            const code = decidingCode(r);
            if (code === 250) this.answered.add(n);
            else this.refused.set(n, code);
            if (!r.final) { await c.cmd('RSET', timeout).catch(() => undefined); }
          } catch (err) {
            this.cut.add(n);
            throw err;
          }
        }
        await c.quit();
      } catch {
        c?.destroy();
        await sleep(50); // server down or restarting
      }
    }
  }
}
