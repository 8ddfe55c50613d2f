/**
 * Messages composed for POST /api/v1/messages (compose.ts: compose-fast.ts or MailComposer),
 * parsed back with independent parsers: mailsplit for the MIME structure (with libmime, which it
 * carries, for RFC 2047 words and RFC 2231 file names), libqp and Buffer for the bodies, and
 * nodemailer's addressparser for the address lists. The parsed fields must equal the request's.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import addressparser from 'nodemailer/lib/addressparser';
import { configSchema } from '../../../src/config/schema.js';
import { composeMessage } from '../../../src/http/compose.js';
import { fastComposable } from '../../../src/http/compose-fast.js';
import { apiSchemas, type SendMessageInput } from '../../../src/http/schemas.js';

const require = createRequire(import.meta.url);
// mailsplit and libqp ship no types.
interface SplitNode {
  type: 'node'; contentType: string | false; charset: string | false; encoding: string | false; multipart: string | false;
  disposition: string | false; filename: string | false;
  headers: { getFirst(k: string): string; get(k: string): string[] };
  libmime: { decodeWords(s: string): string };
}
const { Splitter } = require('mailsplit') as { Splitter: new (o?: object) => NodeJS.ReadWriteStream };
const libqp = require('libqp') as { decode(s: string): Buffer };

interface Part { type: string; charset: string | false; disposition: string | false; filename: string | false; cid: string; content: Buffer }
interface Parsed { fields: (k: string) => string; addresses: (k: string) => { name: string; address: string }[]; types: string[]; parts: Part[] }

async function parse(body: Buffer): Promise<Parsed> {
  const s = new Splitter();
  const nodes: { node: SplitNode; chunks: Buffer[] }[] = [];
  const done = new Promise<void>((resolve, reject) => { s.on('end', resolve); s.on('error', reject); });
  s.on('data', (d: SplitNode | { type: string; value: Buffer }) => {
    if (d.type === 'node') nodes.push({ node: d as SplitNode, chunks: [] });
    else if (d.type === 'body') nodes[nodes.length - 1]!.chunks.push((d as { value: Buffer }).value);
  });
  s.end(body);
  await done;
  const root = nodes[0]!.node;
  const decode = (n: SplitNode, raw: Buffer): Buffer => {
    if (n.encoding === 'base64') return Buffer.from(raw.toString('latin1'), 'base64');
    if (n.encoding === 'quoted-printable') return libqp.decode(raw.toString('latin1'));
    return raw;
  };
  return {
    fields: (k) => root.libmime.decodeWords(root.headers.getFirst(k)),
    addresses: (k) => addressparser(root.headers.getFirst(k)).map((a) => {
      assert.ok(!('group' in a && a.group));
      return { name: root.libmime.decodeWords((a as { name: string }).name), address: (a as { address: string }).address };
    }),
    types: nodes.map((n) => String(n.node.contentType)),
    parts: nodes.filter((n) => !n.node.multipart).map((n) => ({
      type: String(n.node.contentType), charset: n.node.charset, disposition: n.node.disposition, filename: n.node.filename,
      cid: n.node.headers.getFirst('Content-ID'), content: decode(n.node, Buffer.concat(n.chunks)),
    })),
  };
}

const schemas = apiSchemas(configSchema.parse({}).limits);
const request = (json: Record<string, unknown>): SendMessageInput => schemas.sendMessage.parse(json);
const b64 = (b: Buffer | string): string => Buffer.from(b).toString('base64');
/** A text part's content as sent: bare LF made CRLF; the CRLF MailComposer adds at the end left off. */
const textOf = (p: Part): string => p.content.toString('utf8').replace(/\r\n$/, '');

describe('composed messages parse back to the request', () => {
  it('text only (7bit), with the header fields', async () => {
    const m = request({ from: 'app@example.com', to: ['one@example.net', 'Two <two@example.net>'], subject: 'Hello there', text: 'Line one\r\nLine two' });
    assert.ok(fastComposable(m));
    const c = await composeMessage(m, 'api.postline.test');
    const p = await parse(c.body);
    assert.equal(p.fields('subject'), 'Hello there');
    assert.deepEqual(p.addresses('from'), [{ name: '', address: 'app@example.com' }]);
    assert.deepEqual(p.addresses('to'), [{ name: '', address: 'one@example.net' }, { name: 'Two', address: 'two@example.net' }]);
    assert.equal(p.fields('message-id'), c.messageId);
    assert.ok(!Number.isNaN(Date.parse(p.fields('date'))));
    assert.equal(p.fields('mime-version'), '1.0');
    assert.deepEqual(p.types, ['text/plain']);
    assert.equal(p.parts[0]!.charset, 'utf-8');
    assert.equal(textOf(p.parts[0]!), 'Line one\r\nLine two');
  });

  it('html only, UTF-8 (quoted-printable), bare LF sent as CRLF', async () => {
    const html = '<p>Grüße aus Köln, schöne Grüße</p>\n<p>' + 'lang '.repeat(40) + '</p>';
    const m = request({ from: 'a@example.com', to: ['b@example.net'], subject: 'Grüße', html });
    assert.ok(fastComposable(m));
    const p = await parse((await composeMessage(m, 'h.test')).body);
    assert.equal(p.fields('subject'), 'Grüße');
    assert.deepEqual(p.types, ['text/html']);
    assert.equal(textOf(p.parts[0]!), html.replace(/\n/g, '\r\n'));
  });

  it('text and html (multipart/alternative), UTF-8 subject and names, cc, reply-to; bcc not in the header', async () => {
    const subject = 'Ünïcödé Grüße — 山田太郎からのお知らせ, a subject long enough to be folded over more than one line';
    const m = request({
      from: { name: 'Zwei Zoë', address: 'zoe@example.com' }, to: ['山田 太郎 <taro@example.jp>', '"Doe, Jane" <jane@example.com>'],
      cc: [{ name: 'Ünal', address: 'u@example.org' }], bcc: ['hidden@example.org'], replyTo: 'Help Desk <help@example.com>',
      subject, text: 'Привет, мир\r\nвторая строка', html: '<p>Привет, мир</p>',
    });
    assert.ok(fastComposable(m));
    const c = await composeMessage(m, 'h.test');
    const p = await parse(c.body);
    assert.equal(p.fields('subject'), subject);
    assert.deepEqual(p.addresses('from'), [{ name: 'Zwei Zoë', address: 'zoe@example.com' }]);
    assert.deepEqual(p.addresses('to'), [{ name: '山田 太郎', address: 'taro@example.jp' }, { name: 'Doe, Jane', address: 'jane@example.com' }]);
    assert.deepEqual(p.addresses('cc'), [{ name: 'Ünal', address: 'u@example.org' }]);
    assert.deepEqual(p.addresses('reply-to'), [{ name: 'Help Desk', address: 'help@example.com' }]);
    assert.equal(p.fields('bcc'), '');
    assert.doesNotMatch(c.body.toString('latin1'), /hidden@example\.org/);
    assert.deepEqual(c.recipients, ['taro@example.jp', 'jane@example.com', 'u@example.org', 'hidden@example.org']);
    assert.deepEqual(p.types, ['multipart/alternative', 'text/plain', 'text/html']);
    assert.equal(textOf(p.parts[0]!), 'Привет, мир\r\nвторая строка');
    assert.equal(textOf(p.parts[1]!), '<p>Привет, мир</p>');
    for (const line of c.body.toString('latin1').split('\r\n')) assert.ok(line.length <= 78, `line of ${line.length}: ${line}`);
  });

  it('attachments (multipart/mixed): bytes, types and a UTF-8 file name', async () => {
    const bin = Buffer.from(Array.from({ length: 3000 }, (_, i) => (i * 7) & 0xff));
    const m = request({
      from: 'a@example.com', to: ['b@example.net'], subject: 'files', text: 'see attached',
      attachments: [{ filename: 'Bericht März.pdf', contentType: 'application/pdf', content: b64(bin) }, { filename: 'notes.txt', content: b64('a note') }],
    });
    assert.equal(fastComposable(m), false);
    const p = await parse((await composeMessage(m, 'h.test')).body);
    assert.deepEqual(p.types, ['multipart/mixed', 'text/plain', 'application/pdf', 'text/plain']);
    assert.equal(textOf(p.parts[0]!), 'see attached');
    assert.equal(p.parts[1]!.disposition, 'attachment');
    assert.equal(p.parts[1]!.filename, 'Bericht März.pdf');
    assert.ok(p.parts[1]!.content.equals(bin));
    assert.equal(p.parts[2]!.filename, 'notes.txt');
    assert.equal(p.parts[2]!.content.toString(), 'a note');
  });

  it('inline images (multipart/related with Content-ID) beside text', async () => {
    const png = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 1, 2, 3]);
    const m = request({
      from: 'a@example.com', to: ['b@example.net'], subject: 'logo', text: 'plain', html: '<p><img src="cid:logo@x"></p>',
      attachments: [{ filename: 'logo.png', contentType: 'image/png', content: b64(png), contentId: 'logo@x' }],
    });
    const p = await parse((await composeMessage(m, 'h.test')).body);
    assert.deepEqual(p.types, ['multipart/alternative', 'text/plain', 'multipart/related', 'text/html', 'image/png']);
    assert.equal(textOf(p.parts[1]!), '<p><img src="cid:logo@x"></p>');
    assert.equal(p.parts[2]!.cid, '<logo@x>');
    assert.equal(p.parts[2]!.disposition, 'inline');
    assert.ok(p.parts[2]!.content.equals(png));
  });

  it('custom header fields, and a CJK text sent as base64', async () => {
    const text = '山田太郎のメール。'.repeat(40);
    const m = request({ from: 'a@example.com', to: ['b@example.net'], text, headers: { 'X-Campaign': 'spring 2027', 'x-note': 'Grüße', 'List-Unsubscribe': '<mailto:u@example.com>' } });
    assert.ok(fastComposable(m));
    const c = await composeMessage(m, 'h.test');
    const p = await parse(c.body);
    assert.equal(p.fields('x-campaign'), 'spring 2027');
    assert.equal(p.fields('x-note'), 'Grüße');
    assert.equal(p.fields('list-unsubscribe'), '<mailto:u@example.com>');
    assert.match(c.body.toString('latin1'), /^Content-Transfer-Encoding: base64$/m);
    assert.equal(textOf(p.parts[0]!), text);
  });
});
