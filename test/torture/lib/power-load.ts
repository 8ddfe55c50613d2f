/**
 * The load of the power-loss scenario: concurrent SMTP sessions, each sending a few messages per
 * connection until stopped, with mixed sizes (small inline bodies, bodies near the 128 KiB
 * inline limit, and, unless switched off, 140-400 KiB bodies that spill to files) and recipients at sink.test (the
 * accepting sink), defer.test (the deferring one) or both. Each message has a key
 * "<round>x<n>" in its recipients (`m<key>@sink.test`, `d<key>@defer.test`) and Message-ID, and
 * the queue ID of every 250 reply is kept. Every loop is bounded by `maxPerRound` and stop().
 */
import { RawSmtp } from '../../helpers/raw-smtp.js';
import { decidingCode } from './load.js';
import { randInt, sleep } from './profile.js';

/** A message the server answered 250. */
export interface Answered {
  readonly key: string;
  readonly queueId: string;
  readonly sink: boolean;
  readonly defer: boolean;
  /** Body over the inline limit (a file in spool/). */
  readonly large: boolean;
}

export interface PowerLoadOptions {
  readonly port: () => number;
  readonly sessions: number;
  readonly maxPerRound: number;
}

/** 512 KiB of 80-byte lines (78 characters and CRLF) to cut bodies from. */
const FILL = Buffer.from(Array.from({ length: 6554 }, (_, i) => `${String(i).padStart(6, '0')} ${'abcdefghijklmnopqrstuvwxyz0123456789'.repeat(2).slice(0, 71)}\r\n`).join(''), 'latin1');

/** What message `key` is: its recipients and body (about `size` bytes; over the inline limit only with `large`). */
function planOf(key: string, large: boolean): { rcpts: string[]; data: Buffer; sink: boolean; defer: boolean; large: boolean } {
  const r = large ? Math.random() : 0.15 + Math.random() * 0.85;
  const size = r < 0.15 ? randInt(140, 400) * 1024 : r < 0.25 ? randInt(40, 120) * 1024 : randInt(1, 12) * 1024;
  const u = Math.random();
  const sink = u < 0.55 || u >= 0.9;
  const defer = u >= 0.55;
  const rcpts = [...(sink ? [`m${key}@sink.test`] : []), ...(defer ? [`d${key}@defer.test`] : [])];
  const head = Buffer.from(`From: <load@origin.test>\r\nTo: ${rcpts.map((a) => `<${a}>`).join(', ')}\r\nSubject: power loss ${key}\r\nMessage-ID: <pl-${key}@origin.test>\r\n\r\n`, 'latin1');
  const lines = Math.max(1, Math.floor((size - head.length) / 80));
  return { rcpts, data: Buffer.concat([head, FILL.subarray(0, lines * 80)]), sink, defer, large: head.length + lines * 80 > 128 * 1024 };
}

export class PowerLoad {
  /** Every message answered 250, all rounds. */
  readonly answered: Answered[] = [];
  /** Messages refused (4xx/5xx) and cut off (no final reply), all rounds. */
  refused = 0;
  cut = 0;
  private round = 0;
  private large = true;
  private n = 0;
  private stopping = false;
  private workers: Promise<void>[] = [];

  constructor(private readonly o: PowerLoadOptions) {}

  /** Starts the sessions of one round; `large`: 15% of the bodies spill to files (else none). */
  start(round: number, large = true): void {
    this.round = round;
    this.large = large;
    this.n = 0;
    this.stopping = false;
    this.workers = Array.from({ length: this.o.sessions }, () => this.session());
  }

  /** Stops: the transactions in progress end (the server is gone), then the sessions. */
  async stop(): Promise<void> {
    this.stopping = true;
    await Promise.all(this.workers);
  }

  private async session(): Promise<void> {
    while (!this.stopping && this.n < this.o.maxPerRound) {
      let c: RawSmtp | undefined;
      try {
        c = (await RawSmtp.open(this.o.port())).c;
        await c.cmd('EHLO load.test', 10_000);
        const per = randInt(1, 8);
        for (let k = 0; k < per && !this.stopping && this.n < this.o.maxPerRound; k++) {
          const key = `${this.round}x${this.n++}`;
          const p = planOf(key, this.large);
          try {
            const r = await c.send('load@origin.test', p.rcpts, p.data, '', 20_000);
            if (decidingCode(r) === 250) {
              const id = /queued as (\S+)/.exec(r.final!.text)?.[1];
              if (!id) throw new Error(`250 without a queue ID: ${r.final!.text}`);
              this.answered.push({ key, queueId: id, sink: p.sink, defer: p.defer, large: p.large });
            } else {
              this.refused++;
            }
          } catch (err) {
            this.cut++;
            throw err;
          }
        }
        await c.quit();
      } catch {
        c?.destroy();
        if (!this.stopping) await sleep(50);
      }
    }
  }
}
