/** The internal agent: the bounce consumer, an unknown name, another consumer registered. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { InternalAgent } from '../../../src/local/internal-agent.js';
import type { DeliveryRequest } from '../../../src/delivery/types.js';
import type { NextHop } from '../../../src/routing/types.js';

function request(nextHop: NextHop): DeliveryRequest {
  return {
    queueId: 'Q1', mailFrom: 'a@origin.test', bodyType: '7BIT', smtputf8: false, size: 4, nextHop,
    recipients: [{ idx: 0, address: 'x@gone.test' }, { idx: 3, address: 'y@gone.test' }],
    openBody: () => Readable.from([Buffer.from('\r\nhi\r\n')]),
  };
}

test('bounce: every recipient 550 5.1.1 mailbox unavailable (local route)', async () => {
  const rs = await new InternalAgent().deliver(request({ kind: 'internal', name: 'bounce' }));
  assert.deepEqual(rs.map((r) => [r.idx, r.outcome, r.code, r.dsnStatus, r.diagnostic]), [
    [0, 'bounced', 550, '5.1.1', '550 5.1.1 <x@gone.test>: mailbox unavailable (local route)'],
    [3, 'bounced', 550, '5.1.1', '550 5.1.1 <y@gone.test>: mailbox unavailable (local route)'],
  ]);
});

test('an unknown consumer defers 4.3.5; a registered one is called; one that throws defers 4.3.0; other transports 4.3.5', async () => {
  const a = new InternalAgent();
  assert.deepEqual((await a.deliver(request({ kind: 'internal', name: 'feedback' }))).map((r) => r.dsnStatus), ['4.3.5', '4.3.5']);
  a.register('feedback', async (req) => req.recipients.map((r) => ({ idx: r.idx, outcome: 'delivered' as const, code: 250, dsnStatus: '2.0.0', diagnostic: 'taken', remote: false })));
  assert.deepEqual((await a.deliver(request({ kind: 'internal', name: 'feedback' }))).map((r) => r.outcome), ['delivered', 'delivered']);
  a.register('broken', async () => { throw new Error('boom'); });
  const b = await a.deliver(request({ kind: 'internal', name: 'broken' }));
  assert.deepEqual(b.map((r) => [r.outcome, r.dsnStatus]), [['deferred', '4.3.0'], ['deferred', '4.3.0']]);
  assert.equal((await a.deliver(request({ kind: 'maildir', path: '/x' })))[0]!.dsnStatus, '4.3.5');
});
