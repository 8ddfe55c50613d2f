/** The duplicate recipient filter (src/cleanup/recipients.ts). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { recipientKey, soleRecipient, uniqueRecipients } from '../../../src/cleanup/recipients.js';
import type { Recipient } from '../../../src/core/envelope.js';

test('duplicates (address folded to lower case, local part included) are removed, the first kept', () => {
  const rs: Recipient[] = [{ address: 'Bob@Example.COM' }, { address: 'bob@example.com' }, { address: 'eve@example.com' }, { address: 'BOB@EXAMPLE.COM' }];
  assert.deepEqual(uniqueRecipients(rs), [{ address: 'Bob@Example.COM' }, { address: 'eve@example.com' }]);
});

test('NOTIFY or ORCPT that differ keep both; NOTIFY compares as a set; ORCPT folds like the address', () => {
  const rs: Recipient[] = [
    { address: 'a@x.test', notify: ['SUCCESS'] },
    { address: 'a@x.test', notify: ['FAILURE'] },
    { address: 'a@x.test' },
    { address: 'a@x.test', notify: ['FAILURE', 'DELAY'] },
    { address: 'a@x.test', notify: ['DELAY', 'FAILURE'] },
    { address: 'a@x.test', orcpt: { addrType: 'rfc822', address: 'a@old.test' } },
    { address: 'a@x.test', orcpt: { addrType: 'RFC822', address: 'A@Old.Test' } },
    { address: 'a@x.test', orcpt: { addrType: 'rfc822', address: 'b@old.test' } },
  ];
  assert.deepEqual(uniqueRecipients(rs).map(recipientKey), [0, 1, 2, 3, 5, 7].map((i) => recipientKey(rs[i]!)));
});

test('nothing to remove: the same array comes back', () => {
  const rs: Recipient[] = [{ address: 'a@x.test' }, { address: 'b@x.test' }];
  assert.equal(uniqueRecipients(rs), rs);
});

test('the `for` recipient is named only when every recipient is one mailbox', () => {
  assert.equal(soleRecipient([{ address: 'Bob@x.test' }]), 'Bob@x.test');
  assert.equal(soleRecipient([{ address: 'Bob@x.test', notify: ['SUCCESS'] }, { address: 'bob@x.test', notify: ['NEVER'] }]), 'Bob@x.test');
  assert.equal(soleRecipient([{ address: 'a@x.test' }, { address: 'b@x.test' }]), undefined);
  assert.equal(soleRecipient([]), undefined);
});

test('a quoted local part names the same mailbox as its unquoted form (RFC 5321 4.1.2): duplicates', () => {
  const rs: Recipient[] = [
    { address: 'bob@x.test' },
    { address: '"bob"@x.test' },
    { address: '"b\\ob"@x.test' }, // a quoted-pair is the character itself
    { address: '"Bob"@X.test' },
    { address: '"b o"@x.test' }, // needs its quotes: another mailbox
    { address: '"B O"@x.test' },
    { address: '"b\\"o"@x.test' },
    { address: '"b.o"@x.test' },
    { address: 'b.o@x.test' },
  ];
  assert.deepEqual(uniqueRecipients(rs).map((r) => r.address), ['bob@x.test', '"b o"@x.test', '"b\\"o"@x.test', '"b.o"@x.test']);
  assert.equal(soleRecipient([{ address: 'bob@x.test' }, { address: '"bob"@x.test' }]), 'bob@x.test');
});
