/**
 * Test harness for scheduler unit tests: an in-memory store, a scripted fake DeliveryAgent that
 * counts concurrent calls, a capturing DSN port, a ManualClock and the captured events.
 */
import { validateConfig } from '../../../src/config/load.js';
import type { PostlineConfig } from '../../../src/config/schema.js';
import { ManualClock } from '../../../src/core/clock.js';
import type { Envelope } from '../../../src/core/envelope.js';
import { silentLogger } from '../../../src/core/log.js';
import { newQueueId } from '../../../src/core/queue-id.js';
import type { DsnInput } from '../../../src/bounce/types.js';
import type { DeliveryAgent, DeliveryRequest, RecipientResult } from '../../../src/delivery/types.js';
import { EventBus } from '../../../src/events/bus.js';
import type { EventRecord } from '../../../src/events/record.js';
import type { PostlineEvent } from '../../../src/events/types.js';
import { nextHopKey, type NextHop } from '../../../src/routing/types.js';
import { Scheduler, type SchedulerOptions } from '../../../src/scheduler/scheduler.js';
import { MemoryQueueStore, type PutMessage } from '../../helpers/memory-store.js';
import type { QueuedMessage } from '../../../src/spool/types.js';

export const BODY = 'Received: from client.example\r\nSubject: hello\r\nFrom: a@example.com\r\n\r\nline one\r\nline two\r\n';
export const HEADERS = 'Received: from client.example\r\nSubject: hello\r\nFrom: a@example.com\r\n\r\n';

export type Script = (req: DeliveryRequest, call: number) => RecipientResult[] | Promise<RecipientResult[]>;

export const ok = (idx: number, relay = 'mx.example.org[192.0.2.25]:25'): RecipientResult =>
  ({ idx, outcome: 'delivered', code: 250, dsnStatus: '2.0.0', diagnostic: '250 2.0.0 Ok: queued as XYZ', remote: true, remoteMta: relay });
export const relayed = (idx: number): RecipientResult => ({ ...ok(idx), relayed: true });
/** Accepted by a next hop that offers DSN: NOTIFY went with the RCPT, the hop reports (RFC 3461 5.2.2). */
export const passedOn = (idx: number): RecipientResult => ({ ...ok(idx), dsnPassedOn: true });
export const tempfail = (idx: number): RecipientResult =>
  ({ idx, outcome: 'deferred', code: 451, dsnStatus: '4.3.0', diagnostic: '451 4.3.0 try again later', remote: true, remoteMta: 'mx.example.org[192.0.2.25]:25', bounceClass: 'TransientFailure' });
export const permfail = (idx: number): RecipientResult =>
  ({ idx, outcome: 'bounced', code: 550, dsnStatus: '5.1.1', diagnostic: '550 5.1.1 <x> User unknown', remote: true, remoteMta: 'mx.example.org[192.0.2.25]:25', bounceClass: 'InvalidRecipient' });

/** Answers every recipient of a request with `f(idx)`. */
export const all = (f: (idx: number) => RecipientResult): Script => (req) => req.recipients.map((r) => f(r.idx));

export class FakeAgent implements DeliveryAgent {
  readonly calls: DeliveryRequest[] = [];
  concurrent = 0;
  maxConcurrent = 0;
  readonly perKey = new Map<string, number>();
  readonly maxPerKey = new Map<string, number>();
  closed = false;
  constructor(public script: Script = all(ok)) {}
  async deliver(req: DeliveryRequest): Promise<RecipientResult[]> {
    const key = nextHopKey(req.nextHop);
    this.calls.push(req);
    this.concurrent++;
    this.maxConcurrent = Math.max(this.maxConcurrent, this.concurrent);
    this.perKey.set(key, (this.perKey.get(key) ?? 0) + 1);
    this.maxPerKey.set(key, Math.max(this.maxPerKey.get(key) ?? 0, this.perKey.get(key)!));
    try {
      return await this.script(req, this.calls.length);
    } finally {
      this.concurrent--;
      this.perKey.set(key, this.perKey.get(key)! - 1);
    }
  }
  async close(): Promise<void> { this.closed = true; }
}

export const mxRoute = (address: string): NextHop => ({ kind: 'mx', domain: address.slice(address.lastIndexOf('@') + 1).toLowerCase(), port: 25, tls: 'opportunistic' });

export function testConfig(delivery: Record<string, unknown> = {}, extra: Record<string, unknown> = {}): PostlineConfig {
  return validateConfig({ hostname: 'mx.test', ...extra, delivery: { retry: { initialMs: 300_000, maxMs: 4_000_000, multiplier: 2, jitter: 0.1 }, ...delivery } }, '/tmp', {});
}

export interface Harness {
  store: MemoryQueueStore;
  agent: FakeAgent;
  clock: ManualClock;
  events: PostlineEvent[];
  bus: EventBus;
  dsns: { input: DsnInput; envelope: Envelope; id: string; body: Buffer }[];
  config: PostlineConfig;
  scheduler: Scheduler;
  /** store.put with arrivedAt defaulting to the manual clock's now. */
  put(m: PutMessage, body: string | Buffer): Promise<QueuedMessage>;
  /** A new Scheduler over the same store/clock/agent (restart). */
  restart(): Scheduler;
}

export function harness(opts: {
  config?: PostlineConfig; script?: Script; store?: MemoryQueueStore; clock?: ManualClock; build?: (i: DsnInput) => Buffer;
  /** More scheduler options (traffic shaping: destinationStates, mxNames, shortWaitMs). */
  scheduler?: Partial<Pick<SchedulerOptions, 'destinationStates' | 'mxNames' | 'shortWaitMs'>>;
} = {}): Harness {
  const store = opts.store ?? new MemoryQueueStore();
  const clock = opts.clock ?? new ManualClock();
  const agent = new FakeAgent(opts.script);
  const events: PostlineEvent[] = [];
  const bus = new EventBus();
  bus.subscribe((e) => events.push(e));
  store.setEventListener((list) => { for (const e of list) bus.emit(e); });
  const dsns: Harness['dsns'] = [];
  const config = opts.config ?? testConfig();
  let lastInput: DsnInput | undefined;
  const dsn = {
    build: (input: DsnInput): Buffer => { lastInput = input; return opts.build ? opts.build(input) : Buffer.from(`DSN about ${input.queueId}`); },
    inject: async (envelope: Envelope, _body: Buffer, evs: readonly EventRecord[]): Promise<string> => {
      if (!lastInput) throw new Error('inject without build');
      const id = newQueueId(clock.now());
      dsns.push({ input: lastInput, envelope, id, body: _body });
      await store.appendEvents(evs.map((e) => (e.type === 'dsn.queued' ? { ...e, dsnQueueId: id } : e)));
      return id;
    },
  };
  const make = (): Scheduler => new Scheduler({
    store, agent, route: mxRoute, logger: silentLogger(), clock, config, random: () => 0.5, scanTimer: false, dsn, ...opts.scheduler,
  });
  const put = (m: PutMessage, body: string | Buffer): Promise<QueuedMessage> => store.put({ arrivedAt: clock.now(), ...m }, body);
  return { store, agent, clock, events, bus, dsns, config, scheduler: make(), restart: make, put };
}

/** Events of one type. */
type EventOf<T, E = PostlineEvent> = E extends { type: infer U } ? (T extends U ? E : never) : never;
export function ofType<T extends PostlineEvent['type']>(events: PostlineEvent[], type: T): EventOf<T>[] {
  return events.filter((e) => e.type === type) as EventOf<T>[];
}
