/**
 * compose-fast.ts against nodemailer's MailComposer (the path it replaces): for the same fields,
 * Message-ID, date and boundary, the two messages must be the same bytes. Examples first, then
 * generated requests (fast-check) validated by the API's own schema, then the field-name casing.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import MimeNode from 'nodemailer/lib/mime-node';
import { configSchema } from '../../../src/config/schema.js';
import { composeFast, fastComposable, fieldName } from '../../../src/http/compose-fast.js';
import { composeWithMailComposer } from '../../../src/http/compose.js';
import { apiSchemas, type SendMessageInput } from '../../../src/http/schemas.js';

const schemas = apiSchemas(configSchema.parse({}).limits);
const MID = '<fixed.1@api.postline.test>';
const BASE = '0123456789abcdef';

/** The request as the route sees it (schema defaults applied), or undefined when the schema refuses it. */
function request(json: Record<string, unknown>): SendMessageInput | undefined {
  const r = schemas.sendMessage.safeParse(json);
  return r.success ? r.data : undefined;
}

/** Both composers on `m`; the date is MailComposer's own (read back from its Date field). */
async function both(m: SendMessageInput): Promise<{ ref: string; fast: string; refId: string; fastId: string }> {
  // As compose.ts: a Message-ID of our own only when `headers` has none.
  const own = !Object.keys(m.headers ?? {}).some((k) => k.toLowerCase() === 'message-id');
  const ref = await composeWithMailComposer(m, { ...(own ? { messageId: MID } : {}), baseBoundary: BASE });
  const refText = ref.body.toString('latin1');
  const dates = [...refText.slice(0, refText.indexOf('\r\n\r\n')).matchAll(/^Date: (.*)$/gm)];
  const when = dates.length ? new Date(Date.parse(dates[dates.length - 1]![1]!)) : new Date();
  const fast = composeFast(m, { messageId: own ? MID : '', baseBoundary: BASE, date: Number.isNaN(when.getTime()) ? new Date() : when });
  return { ref: refText, fast: fast.body.toString('latin1'), refId: ref.messageId, fastId: fast.messageId };
}

async function same(json: Record<string, unknown>): Promise<void> {
  const m = request(json);
  assert.ok(m, `schema refused ${JSON.stringify(json).slice(0, 200)}`);
  assert.ok(fastComposable(m));
  const r = await both(m);
  assert.equal(r.fast, r.ref);
  assert.equal(r.fastId, r.refId);
}

const benchLine = 'abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ-abcdefghijkl\r\n';

describe('compose-fast writes what MailComposer writes', () => {
  it('the bench message, text only, html only, both', async () => {
    await same({ from: 'bench@source.test', to: ['rcpt@sink.test'], subject: 'postline bench api', text: benchLine.repeat(27) });
    await same({ from: 'a@example.com', to: ['b@example.net'], text: 'Hi there' });
    await same({ from: 'a@example.com', to: ['b@example.net'], html: '<p>Hello</p>' });
    await same({ from: 'a@example.com', to: ['b@example.net'], subject: 'x', text: 'plain', html: '<p>html</p>' });
  });

  it('names, UTF-8 names and subjects, quoted names, cc, reply-to, bcc left out, long lists folded', async () => {
    await same({
      from: { name: 'The App', address: 'app@example.com' }, to: ['one@example.net', { name: 'Zwei Zoë', address: 'two@EXAMPLE.net' }],
      cc: ['"Doe, Jane" <jane@example.com>', 'ONE@example.net'], bcc: ['hidden@example.org'], replyTo: 'Help <help@example.com>',
      subject: 'Grüße aus Köln — 山田', text: 'Grüße', html: '<p>Grüße</p>',
    });
    await same({ from: 'a@example.com', to: Array.from({ length: 12 }, (_, i) => `user${i}@example.net`), replyTo: ['r1@example.com', 'R2 <r2@example.com>'], subject: 'Say "hi"', text: 'x' });
    await same({ from: 'jörg@bücher.example', to: ['"john doe"@example.com', 'u@[127.0.0.1]', 'x@xn--bcher-kva.example'], subject: '=?utf-8?Q?already?=', text: 'x' });
    await same({ from: 'a@example.com', to: ['b@example.net'], subject: 'a '.repeat(60) + 'end', text: 'x' });
  });

  it('custom headers: casing, encoded values, Message-ID and Date from headers, empty values', async () => {
    await same({ from: 'a@example.com', to: ['b@example.net'], text: 'x', headers: { 'x-campaign': 'spring', 'LIST-UNSUBSCRIBE': '<mailto:u@example.com>', 'X-Note': 'Grüße', 'x-empty': '', 'x-space': '  ' } });
    await same({ from: 'a@example.com', to: ['b@example.net'], text: 'x', headers: { 'message-id': 'mine.1@example.com', date: 'Fri, 04 Dec 2026 10:00:00 +0000', 'in-reply-to': 'a@b', references: 'a@b <c@d>' } });
    await same({ from: 'a@example.com', to: ['b@example.net'], text: 'x', headers: { 'x-smtpapi': '{}', 'mime-foo': '1', 'received-spf': 'pass', 'content-id': 'c1', 'otp-token': 'x', 'content-features': 'y', sender: 'Bob <bob@example.com>' } });
  });

  it('bodies: bare LF and CR, long lines, Latin-1 text (quoted-printable), CJK (base64), trailing white space, controls', async () => {
    const bodies = [
      'a\nb\nc', 'a\rb', 'a\r\n', 'x'.repeat(77), 'short\r\n' + 'y'.repeat(200) + '\r\nend', 'Grüße, schöne Grüße\r\n'.repeat(20),
      '山田太郎のメール\r\n'.repeat(30), 'trailing   ', 'tabs\t\t', 'a \r\nb\t\r\n', 'nul\u0000here', 'x'.repeat(80) + ' ', '😀'.repeat(50),
      'é'.repeat(100), ' ', '\r\n', 'a=b=c ==', '.\r\n.dot\r\n',
    ];
    for (const text of bodies) await same({ from: 'a@example.com', to: ['b@example.net'], text });
    for (const html of bodies) await same({ from: 'a@example.com', to: ['b@example.net'], text: 'alt', html });
  });

  it('quoted-printable over 64 KiB (the encoder works in pieces), with white space at the piece edges', async () => {
    const piece = 64 * 1024;
    const latin = (n: number) => ('Grüße an alle Leser dieser langen Nachricht, ').repeat(Math.ceil(n / 45)).slice(0, n);
    for (const at of [piece - 2, piece - 1, piece, piece + 1]) {
      const b = Buffer.from(latin(piece + 5000), 'utf8');
      const s = b.toString('utf8');
      const text = s.slice(0, at) + '  \t ' + s.slice(at) + '   ';
      await same({ from: 'a@example.com', to: ['b@example.net'], text });
    }
    await same({ from: 'a@example.com', to: ['b@example.net'], text: latin(200_000) + ' '.repeat(10) });
    await same({ from: 'a@example.com', to: ['b@example.net'], text: 'x'.repeat(140_000) });
  });

  it('is not used for attachments or empty text/html (MailComposer builds those)', () => {
    const m = request({ from: 'a@example.com', to: ['b@example.net'], text: 'x', attachments: [{ filename: 'a.txt', content: 'eA==' }] })!;
    assert.equal(fastComposable(m), false);
    assert.equal(fastComposable(request({ from: 'a@example.com', to: ['b@example.net'], text: '' })!), false);
    assert.equal(fastComposable(request({ from: 'a@example.com', to: ['b@example.net'], text: 'x', html: '' })!), false);
    assert.equal(fastComposable(request({ from: 'a@example.com', to: ['b@example.net'], text: 'x', headers: { 'content-disposition': 'inline' } })!), false);
    assert.equal(fastComposable(request({ from: 'a@example.com', to: ['b@example.net'], text: 'x', headers: { 'Message-ID': '' } })!), false);
    assert.equal(fastComposable(request({ from: 'a@example.com', to: ['b@example.net'], text: 'x', headers: { date: '' } })!), false);
  });
});

describe('compose-fast on generated requests', () => {
  const local = fc.oneof(fc.stringMatching(/^[a-z0-9]([a-z0-9._+-]{0,10}[a-z0-9])?$/), fc.constantFrom('"john doe"', 'jörg', "o'neil", 'x=y', 'a/b', 'UPPER', '_u', 'a!b', 'x&y'));
  const domain = fc.constantFrom('example.com', 'EXAMPLE.net', 'sink.test', 'a.b-c.org', 'bücher.example', 'xn--bcher-kva.example', '[127.0.0.1]', 'localhost', '1x.example', 'x.co', 'MiXeD.Example.ORG',
    'ab--cd.example', 'a-b.c-d.example', `${'a'.repeat(63)}.example`, `${'b'.repeat(64)}.example`, 'under_score.example', 'x.123');
  const addr = fc.tuple(local, domain).map(([l, d]) => `${l}@${d}`);
  const name = fc.oneof(
    fc.constantFrom('', 'The App', 'Zwei Zoë', 'Doe, Jane', 'a "q" b', '山田 太郎', 'x =?utf-8?q?y?= z', 'long '.repeat(20), 'under_score 1', '😀', ' ', 'tab\there', 'back\\slash'),
    fc.string({ unit: 'grapheme', maxLength: 20 }),
  );
  const address = fc.oneof(addr, fc.record({ address: addr }), fc.record({ name, address: addr }), fc.tuple(name, addr).map(([n, a]) => `${n} <${a}>`));
  const text = fc.oneof(
    fc.constantFrom('Hi there', 'x'.repeat(77), 'Grüße\r\n', '山田', 'a\nb', 'a\rb', 'end  ', benchLine.repeat(3)),
    fc.tuple(fc.array(fc.stringMatching(/^[ -~]{0,100}$/), { maxLength: 12 }), fc.constantFrom('\r\n', '\n', '\r')).map(([ls, sep]) => ls.join(sep)),
    fc.string({ unit: 'grapheme', maxLength: 300 }),
    fc.string({ unit: 'binary', maxLength: 200 }),
    fc.array(fc.constantFrom('Gr', 'ü', 'ße ', 'a', ' ', '\t', '\r\n', '\n', 'é', 'x'.repeat(30), '='), { maxLength: 60 }).map((xs) => xs.join('')),
  );
  const subject = fc.oneof(
    fc.constantFrom('Hello', 'Grüße', 'Say "hi"', '=?utf-8?Q?x?=', 'x=?y', 'a\tb', '  ', 'word '.repeat(30), 'Ünïcödé '.repeat(12), 'ctl\u0001x'),
    fc.string({ unit: 'grapheme', maxLength: 120 }),
    fc.string({ unit: 'grapheme-ascii', maxLength: 160 }),
  );
  const headerKey = fc.oneof(
    fc.constantFrom('X-Campaign', 'x-campaign', 'LIST-UNSUBSCRIBE', 'message-id', 'Date', 'In-Reply-To', 'references', 'x-smtpapi', 'Mime-Foo', 'content-id',
      'received-spf', 'x--a', 'dkim-x', 'otp-token', 'content-features', 'Sender', 'X-ID', 'arc-seal', 'Content-Disposition', 'x-md5', 'arcade', 'mime_x'),
    fc.stringMatching(/^[\x21-\x39\x3b-\x7e]{1,20}$/),
  );
  const headerValue = fc.oneof(
    fc.constantFrom('', ' ', 'spring', '<a@b>', 'a@b, c@d', 'Grüße', '=?utf-8?Q?x?=', 'x=?y', '"quoted"', 'Fri, 04 Dec 2026 10:00:00 +0000', 'a\tb', 'long value '.repeat(12)),
    fc.string({ unit: 'grapheme', maxLength: 60 }).filter((v) => !/[\r\n\0]/.test(v)),
  );
  const json = fc.record({
    from: address,
    to: fc.array(address, { maxLength: 4 }),
    cc: fc.array(address, { maxLength: 2 }),
    bcc: fc.array(address, { maxLength: 1 }),
    replyTo: fc.oneof(address, fc.array(address, { maxLength: 2 })),
    subject,
    text,
    html: text,
    headers: fc.dictionary(headerKey, headerValue, { maxKeys: 4 }),
  }, { requiredKeys: ['from', 'to'] });

  it('writes the same bytes as MailComposer', async () => {
    let fast = 0;
    await fc.assert(fc.asyncProperty(json, async (j) => {
      const m = request(j);
      fc.pre(m !== undefined && fastComposable(m));
      fast++;
      const r = await both(m!);
      assert.equal(r.fast, r.ref);
      assert.equal(r.fastId, r.refId);
    }), { numRuns: 600 });
    assert.ok(fast >= 300, `only ${fast} generated requests were composable`);
  });
});

describe('field names', () => {
  /** How MimeNode writes `key` (a child node's header section: no fields of its own but the one). */
  const nodemailerName = (key: string): string => {
    const child = new MimeNode('multipart/mixed').createChild(false);
    child.addHeader(key, 'x@example.com');
    return child.buildHeaders().split(': ')[0]!;
  };

  it('are cased as MailComposer cases them', () => {
    for (const k of ['x-campaign', 'MESSAGE-ID', 'mime-version', 'Mime', 'dkim-signature', 'arc-seal', 'arcade', 'bimi-selector', 'x-smtpapi', 'otp-token',
      'content-features', 'received-spf', 'x-fbl', 'content-md5', 'x-id-x', 'a--b', '-a', '1abc', 'mime.x', 'mime_x', 'X-Y-Z', '~x-y']) {
      assert.equal(fieldName(k), nodemailerName(k), k);
    }
    const key = fc.stringMatching(/^[\x21-\x39\x3b-\x7e]{1,24}$/).filter((k) => k.toLowerCase() !== 'bcc'); // Bcc is never written
    fc.assert(fc.property(key, (k) => fieldName(k) === nodemailerName(k)), { numRuns: 3000 });
  });
});
