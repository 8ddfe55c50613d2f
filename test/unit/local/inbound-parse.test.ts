/**
 * Inbound parse documents from real messages: every mime/ and html/ message of the corpus
 * (POSTLINE_CORPUS) parsed, its text, HTML and attachments (count, names, types, sizes, bytes)
 * equal to what mailparser gives when run on its own over the same bytes; a few checked by hand
 * and sent through the agent to a real receiver; the Authentication-Results reading; header
 * details (UTF-8, a bad Date, no header); a message mailparser refuses bounces 5.6.0; the byte
 * budget.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { simpleParser, type ParsedMail } from 'mailparser';
import { authSummary, InboundParseError, methodResults, parseInbound, type InboundPayload } from '../../../src/local/inbound-parse.js';
import { HttpAgent } from '../../../src/local/http-agent.js';
import { ByteBudget } from '../../../src/local/byte-budget.js';
import { CORPUS_DIR, corpusAvailable, toCrlf } from '../../helpers/corpus.js';
import { InboundReceiver } from '../../helpers/inbound-receiver.js';

const cleanups: Array<() => Promise<void>> = [];
after(async () => { for (const c of cleanups.reverse()) await c().catch(() => {}); });

const noCorpus = !corpusAvailable() && 'no corpus';

function corpusMessage(rel: string): Buffer {
  return toCrlf(readFileSync(join(CORPUS_DIR, rel)));
}

/** Chunks of 1000 bytes, so the header end falls inside a chunk or across two. */
function stream(b: Buffer): Readable {
  const parts: Buffer[] = [];
  for (let i = 0; i < b.length; i += 1000) parts.push(b.subarray(i, i + 1000));
  return Readable.from(parts);
}

function parse(b: Buffer, authservId = 'mx.postline.test'): Promise<InboundPayload> {
  return parseInbound({ queueId: 'Q', mailFrom: 'a@origin.test', rcptTo: ['x@hooks.test'], body: stream(b), maxBytes: 50 * 1024 * 1024, authservId });
}

/** The top-level header field names, found without our code: lines before the first empty line that start a field. */
function fieldNames(b: Buffer): string[] {
  const text = b.toString('latin1');
  const end = text.startsWith('\r\n') ? 0 : text.indexOf('\r\n\r\n');
  const head = end < 0 ? text : text.slice(0, end);
  // RFC 5322 3.6.8: a field name is printable ASCII without ":" or space (an mbox "From " line is none).
  return head.split('\r\n').map((l) => /^([\x21-\x39\x3b-\x7e]+)[ \t]*:/.exec(l)?.[1]).filter((n): n is string => n !== undefined);
}

/** Compares our document with mailparser's own result over the same bytes. */
function assertAgrees(name: string, ours: InboundPayload, ref: ParsedMail, raw: Buffer): void {
  assert.equal(ours.text, ref.text ?? null, `${name}: text`);
  assert.equal(ours.html, typeof ref.html === 'string' ? ref.html : null, `${name}: html`);
  assert.equal(ours.subject, ref.subject ?? null, `${name}: subject`);
  assert.equal(ours.messageId, ref.messageId ?? null, `${name}: messageId`);
  assert.equal(ours.attachments.length, ref.attachments.length, `${name}: attachment count`);
  ours.attachments.forEach((a, i) => {
    const r = ref.attachments[i]!;
    assert.equal(a.filename, r.filename ?? null, `${name}: attachment ${i} filename`);
    assert.equal(a.contentType, r.contentType, `${name}: attachment ${i} type`);
    assert.equal(a.size, r.size, `${name}: attachment ${i} size`);
    assert.equal(a.size, r.content.length, `${name}: attachment ${i} size is the decoded length`);
    assert.ok(Buffer.from(a.content, 'base64').equals(r.content), `${name}: attachment ${i} bytes`);
  });
  assert.deepEqual(ours.headers.map((h) => h.name), fieldNames(raw), `${name}: header fields`);
  assert.equal(ours.size, raw.length, `${name}: size`);
}

test('every mime/ and html/ corpus message: text, html and attachments as mailparser gives them on its own', { skip: noCorpus }, async () => {
  let n = 0;
  let withAttachments = 0;
  for (const dir of ['mime', 'html']) {
    if (!existsSync(join(CORPUS_DIR, dir))) continue;
    for (const f of readdirSync(join(CORPUS_DIR, dir)).sort()) {
      const raw = corpusMessage(join(dir, f));
      let ref: ParsedMail | undefined;
      let refError: unknown;
      try {
        ref = await simpleParser(raw, { keepCidLinks: true, skipHtmlToText: true, skipTextToHtml: true });
      } catch (err) {
        refError = err;
      }
      if (!ref) {
        await assert.rejects(parse(raw), InboundParseError, `${dir}/${f}: mailparser refuses it (${String(refError)}), so do we`);
        continue;
      }
      const ours = await parse(raw);
      assertAgrees(`${dir}/${f}`, ours, ref, raw);
      n++;
      if (ours.attachments.length) withAttachments++;
    }
  }
  assert.ok(n >= 100, `parsed ${n} messages`);
  assert.ok(withAttachments >= 30, `${withAttachments} with attachments`);
});

test('checked by hand: a PDF attachment, an inline image with its Content-ID, text and HTML parts', { skip: noCorpus }, async () => {
  const pdf = await parse(corpusMessage('mime/flanker--attached-pdf.eml'));
  assert.equal(pdf.text, 'Test - body content\n\n');
  assert.equal(pdf.html, null);
  assert.deepEqual(pdf.attachments.map((a) => [a.filename, a.contentType, a.size, a.disposition]), [['test.pdf', 'application/pdf', 6940, 'attachment']]);
  assert.equal(Buffer.from(pdf.attachments[0]!.content, 'base64').subarray(0, 5).toString('latin1'), '%PDF-');
  assert.equal(pdf.date, '2014-06-04T17:50:00.000Z');

  const mixed = await parse(corpusMessage('mime/mailpit--mixed-attachment.eml'));
  assert.equal(mixed.subject, 'Test mixed attachments');
  assert.deepEqual(mixed.from, [{ name: '', address: 'sender@example.com' }]);
  assert.deepEqual(mixed.to, [{ name: '', address: 'recipient@example.com' }]);
  assert.match(mixed.html!, /<img src="cid:inline@example\.com"/, 'cid: links kept, no data: URL');
  assert.deepEqual(mixed.attachments.map((a) => [a.filename, a.contentType, a.size, a.contentId, a.disposition]), [
    ['inline.png', 'image/png', 70, 'inline@example.com', 'inline'],
    ['document.pdf', 'application/pdf', 71, null, 'attachment'],
  ]);
  assert.equal(Buffer.from(mixed.attachments[0]!.content, 'base64').subarray(1, 4).toString('latin1'), 'PNG');

  const spam = await parse(corpusMessage('html/mailparser--spam.eml'));
  assert.equal(spam.text, null, 'no text/plain part and no text made from the HTML');
  assert.match(spam.html!, /^<html>/);
  assert.deepEqual(spam.replyTo, [{ name: 'Matilda Klein', address: 'noreply@guide-des-vins-de-bourgogne.fr' }]);
});

test('corpus messages through the agent to a real receiver: the JSON carries the same fields', { skip: noCorpus }, async () => {
  const rx = await new InboundReceiver().listen();
  cleanups.push(() => rx.close());
  const agent = new HttpAgent({ config: () => ({ allowPrivate: true, timeoutMs: 10_000, maxBytes: 10 * 1024 * 1024, maxBytesInFlight: 10 * 1024 * 1024 }), authservId: () => 'mx.postline.test' });
  cleanups.push(() => agent.close());
  const picks = ['mime/flanker--attached-pdf.eml', 'mime/mailpit--mixed-attachment.eml', 'mime/php-mime-mail-parser--issue408.eml', 'html/spamassassin--welcomelists_winxpnews.com.eml', 'html/mailparser--spam.eml'];
  for (const [i, rel] of picks.entries()) {
    const raw = corpusMessage(rel);
    const rs = await agent.deliver({
      queueId: `Q${i}`, mailFrom: 'a@origin.test', bodyType: '8BITMIME', smtputf8: false, size: raw.length,
      recipients: [{ idx: 0, address: 'x@hooks.test' }], nextHop: { kind: 'http', url: rx.url(), bounceOn4xx: false }, openBody: () => stream(raw),
    });
    assert.equal(rs[0]!.outcome, 'delivered', `${rel}: ${rs[0]!.diagnostic}`);
    const got = rx.requests[i]!.json as InboundPayload;
    assert.equal(got.queueId, `Q${i}`);
    assertAgrees(rel, got, await simpleParser(raw, { keepCidLinks: true, skipHtmlToText: true, skipTextToHtml: true }), raw);
  }
  assert.equal((rx.requests[2]!.json as InboundPayload).attachments.length, 328, 'the message with more than 300 attachments');
});

test('Authentication-Results: results per method, comments and quoted strings skipped; the summary only from our authserv-id', () => {
  assert.deepEqual(methodResults('mx.test 1; spf=pass (sender; said "a=b") smtp.mailfrom=a@b.test; dkim=fail reason="bad; sig" header.d=b.test; dmarc=none'), [
    { method: 'spf', result: 'pass' }, { method: 'dkim', result: 'fail' }, { method: 'dmarc', result: 'none' },
  ]);
  assert.deepEqual(methodResults('mx.test; none'), []);
  const values = ['other.example; spf=pass; dkim=pass; dmarc=pass', 'MX.Postline.Test; spf=softfail; dkim=fail; dkim=neutral', 'mx.postline.test; spf=pass'];
  assert.deepEqual(authSummary(values, 'mx.postline.test'), { authservId: 'mx.postline.test', spf: 'softfail', dkim: 'fail', dmarc: null });
  assert.equal(authSummary(values.slice(0, 1), 'mx.postline.test'), null, 'nothing of ours: no summary (a forged field is not ours to vouch for)');
});

test('header details: UTF-8 values (RFC 6532), a Date that is no date, folded values, no header section at all', async () => {
  const utf8 = Buffer.concat([Buffer.from('Subject: caf'), Buffer.from('\u00e9 \u2603', 'utf8'), Buffer.from('\r\nX-Long: one\r\n two\r\nDate: not a date\r\n\r\nbody\r\n')]);
  const p = await parse(utf8);
  assert.deepEqual(p.headers, [{ name: 'Subject', value: 'caf\u00e9 \u2603' }, { name: 'X-Long', value: 'one two' }, { name: 'Date', value: 'not a date' }]);
  assert.equal(p.subject, 'caf\u00e9 \u2603');
  assert.equal(p.date, null, 'mailparser would say "now"; we say null');
  const none = await parse(Buffer.from('\r\njust a body\r\n'));
  assert.deepEqual(none.headers, []);
  assert.equal(none.text, 'just a body\n');
  const headOnly = await parse(Buffer.from('Subject: only a header\r\n'));
  assert.deepEqual(headOnly.headers, [{ name: 'Subject', value: 'only a header' }]);
});

test('a message mailparser refuses (more than 1000 MIME parts) bounces 554 5.6.0 and is not sent', async () => {
  const parts = Array.from({ length: 1100 }, (_, i) => `--b\r\nContent-Type: text/plain\r\n\r\npart ${i}\r\n`).join('');
  const msg = Buffer.from(`Subject: many parts\r\nContent-Type: multipart/mixed; boundary="b"\r\n\r\n${parts}--b--\r\n`);
  await assert.rejects(parse(msg), InboundParseError);
  const rx = await new InboundReceiver().listen();
  cleanups.push(() => rx.close());
  const agent = new HttpAgent({ config: () => ({ allowPrivate: true, timeoutMs: 5000, maxBytes: 1024 * 1024, maxBytesInFlight: 1024 * 1024 }), authservId: () => 'mx.postline.test' });
  cleanups.push(() => agent.close());
  const rs = await agent.deliver({
    queueId: 'Q', mailFrom: '', bodyType: '7BIT', smtputf8: false, size: msg.length, recipients: [{ idx: 0, address: 'x@hooks.test' }],
    nextHop: { kind: 'http', url: rx.url(), bounceOn4xx: false }, openBody: () => stream(msg),
  });
  assert.deepEqual(rs.map((r) => [r.outcome, r.code, r.dsnStatus]), [['bounced', 554, '5.6.0']]);
  assert.match(rs[0]!.diagnostic, /^554 5\.6\.0 inbound parse: cannot parse the message: /);
  assert.equal(rx.requests.length, 0);
  assert.deepEqual(agent.budgetState(), { inUse: 0, queued: 0 }, 'the budget given back');
});

test('the byte budget: waits in order while full, one alone always goes, an abort leaves the queue', async () => {
  let limit = 100;
  const b = new ByteBudget(() => limit);
  const r1 = await b.acquire(60);
  const order: string[] = [];
  const p2 = b.acquire(50).then((rel) => { order.push('second'); return rel; });
  const ac = new AbortController();
  const p3 = b.acquire(10, ac.signal);
  const p4 = b.acquire(30).then((rel) => { order.push('fourth'); return rel; });
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(order, [], 'the 50 does not fit beside the 60; the 30 waits behind it (first come, first served)');
  assert.equal(b.queued, 3);
  ac.abort();
  await assert.rejects(p3, { name: 'AbortError' });
  r1();
  r1(); // idempotent
  const r2 = await p2;
  const r4 = await p4;
  assert.deepEqual(order, ['second', 'fourth']);
  assert.equal(b.inUse, 80);
  r2();
  r4();
  limit = 10;
  const huge = await b.acquire(1_000_000);
  assert.equal(b.inUse, 1_000_000, 'one alone goes, even bigger than the limit');
  huge();
  assert.equal(b.inUse, 0);
});
