/**
 * The 'rewrite' stage's body rewrite (src/cleanup/body-rewrite.ts) with the tracking link rewriter
 * (src/tracking/html-links.ts) over the corpus's HTML and MIME messages (POSTLINE_CORPUS: html/,
 * mime/, 8bit/, intl/): every message still splits into the same parts (mailsplit) and parses with
 * mailparser to the same text and to HTML holding the tracked links, every part that is not a rewritten text/html part is byte-identical (header and
 * body: text/plain, attachments, the top header section), each rewritten part decodes to exactly
 * what the rewriter makes of the whole decoded original (so base64 and quoted-printable are
 * decoded and re-encoded right, across any chunking), encoded lines stay within 76 characters, and
 * the output does not depend on how the input was chunked.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import type { Duplex } from 'node:stream';
import { createBodyRewrite, type HtmlRewrite } from '../../../src/cleanup/body-rewrite.js';
import { simpleParser } from 'mailparser';
import { LinkRewriter } from '../../../src/tracking/html-links.js';
import { corpusAvailable, loadCorpus, CORPUS_DIR, type CorpusMessage } from '../../helpers/corpus.js';

const require = createRequire(import.meta.url);
const mailsplit = require('mailsplit') as { Splitter: new () => Duplex };
const libqp = require('libqp') as { decode(s: string): Buffer };

interface Part {
  readonly contentType: string;
  readonly multipart: boolean;
  /** The content type of the enclosing part ('' for the top). */
  readonly parentType: string;
  readonly encoding: string;
  readonly disposition: string;
  readonly charset: string | undefined;
  readonly inMessage: boolean;
  readonly header: Buffer;
  readonly body: Buffer;
}

/** The parts of a message as mailsplit splits them (every node: multiparts too, with their preamble bytes as body). */
async function split(data: Buffer): Promise<Part[]> {
  const s = new mailsplit.Splitter();
  const parts: { p: Omit<Part, 'body'>; chunks: Buffer[] }[] = [];
  s.on('data', (item: any) => {
    if (item.type === 'node') {
      let inMessage = false;
      for (let n = item.parentNode; n; n = n.parentNode) if ((n.contentType || '').startsWith('message/')) inMessage = true;
      parts.push({ p: { contentType: item.contentType || '', multipart: !!item.multipart, parentType: item.parentNode?.contentType || '', encoding: item.encoding || '', disposition: item.disposition || '', charset: item.charset ? String(item.charset).toLowerCase() : undefined, inMessage, header: item.getHeaders() }, chunks: [] });
    } else if (item.type === 'body' && parts.length) parts[parts.length - 1]!.chunks.push(item.value);
  });
  await new Promise<void>((resolve, reject) => { s.on('end', resolve); s.on('error', reject); s.end(data); });
  return parts.map(({ p, chunks }) => ({ ...p, body: Buffer.concat(chunks) }));
}

/** The rewrite's output, the input fed in pieces of `chunk` bytes. */
async function rewrite(data: Buffer, rewrites: readonly HtmlRewrite[], chunk = data.length): Promise<Buffer> {
  const d = createBodyRewrite(rewrites);
  const out: Buffer[] = [];
  d.on('data', (c: Buffer) => out.push(c));
  const done = new Promise<void>((resolve, reject) => { d.on('end', resolve); d.on('error', reject); });
  for (let i = 0; i < data.length; i += Math.max(1, chunk)) d.write(data.subarray(i, i + Math.max(1, chunk)));
  d.end();
  await done;
  return Buffer.concat(out);
}

const decode = (p: Part): Buffer => (p.encoding === 'base64' ? Buffer.from(p.body.toString('latin1').replace(/\s+/g, ''), 'base64')
  : p.encoding === 'quoted-printable' ? libqp.decode(p.body.toString('latin1')) : p.body);

const rewritable = (p: Part): boolean => p.contentType === 'text/html' && p.disposition !== 'attachment' && !p.inMessage && !/^utf-?(16|32)/.test(p.charset ?? '');

/** The tracking rewrite used here: deterministic URLs derived from the original. */
function tracking(): { rewrite: HtmlRewrite; options: (index: number, charset: string | undefined) => ConstructorParameters<typeof LinkRewriter>[0] } {
  const options = (index: number, charset: string | undefined) => ({
    click: (u: string) => `https://t.example/t/c/${Buffer.from(u).toString('base64url').slice(0, 40)}`,
    ...(index === 0 ? { pixel: '<img src="https://t.example/t/o/PIXEL" width="1" height="1" alt="">' } : {}),
    charset, budget: { used: 0, max: 1000 },
  });
  return { rewrite: { part: (i) => new LinkRewriter(options(i.index, i.charset)) }, options };
}

const available = corpusAvailable();
const corpus = available ? loadCorpus().filter((m) => /^(html|mime|8bit|intl)\//.test(m.name)) : [];
if (!available) console.log(`corpus not found at ${CORPUS_DIR} (set POSTLINE_CORPUS): corpus part skipped`);

test('corpus: parts other than rewritten HTML are byte-identical, HTML decodes to the rewriter\'s output, lines stay short', { skip: !available && 'no corpus' }, async () => {
  let rewrittenParts = 0;
  let parsed = 0;
  let links = 0;
  let qp = 0;
  let b64 = 0;
  for (const m of corpus) {
    const t = tracking();
    const out = await rewrite(m.data, [t.rewrite]);
    const before = await split(m.data);
    const after = await split(out);
    assert.equal(after.length, before.length, `${m.name}: number of parts`);
    let htmlIndex = 0;
    for (let i = 0; i < before.length; i++) {
      const a = before[i]!;
      const b = after[i]!;
      assert.equal(b.contentType, a.contentType, `${m.name} part ${i}: content type`);
      if (!rewritable(a)) {
        assert.ok(b.header.equals(a.header), `${m.name} part ${i} (${a.contentType}): header changed`);
        assert.ok(b.body.equals(a.body), `${m.name} part ${i} (${a.contentType}): body changed`);
        continue;
      }
      rewrittenParts++;
      const ref = new LinkRewriter(t.options(htmlIndex++, a.charset));
      const original = decode(a).toString('latin1');
      let expected = a.body.length ? ref.write(original) + ref.end() : ''; // an empty part stays empty
      // A part that ended with a line break (the message is one part) still does.
      if (a.body[a.body.length - 1] === 0x0a && !expected.endsWith('\n')) expected += '\r\n';
      assert.equal(decode(b).toString('latin1'), expected, `${m.name} part ${i}: decoded HTML`);
      links += (expected.match(/https:\/\/t\.example\/t\/c\//g) ?? []).length;
      assert.equal(b.encoding, a.encoding === 'base64' ? 'base64' : 'quoted-printable', `${m.name} part ${i}: encoding`);
      if (b.encoding === 'base64') b64++;
      else qp++;
      for (const line of b.body.toString('latin1').split('\r\n')) assert.ok(line.length <= 76, `${m.name} part ${i}: a ${line.length}-character line`);
    }
    // The top header section: unchanged unless the message itself is the HTML part and changed encoding.
    if (!rewritable(before[0]!)) assert.ok(after[0]!.header.equals(before[0]!.header), `${m.name}: top header section`);
    // An independent parser reads it too: the same text, and the tracked links in the HTML.
    const [pa, pb] = await Promise.all([simpleParser(m.data), simpleParser(out)]);
    // (mailparser makes text of HTML parts that are not an alternative to a text part: only compare where there are none.)
    const htmlInText = before.some((p) => rewritable(p) && p.parentType !== 'multipart/alternative');
    if (!htmlInText && before.some((p) => p.contentType === 'text/plain')) assert.equal(pb.text, pa.text, `${m.name}: mailparser's text`);
    const want = htmlIndex > 0 ? after.filter(rewritable).map((p) => (decode(p).toString('latin1').match(/https:\/\/t\.example\/t\/c\//g) ?? []).length).reduce((x, y) => x + y, 0) : 0;
    if (want > 0 && typeof pb.html === 'string') assert.ok((pb.html.match(/https:\/\/t\.example\/t\/c\//g) ?? []).length >= 1, `${m.name}: mailparser's HTML has tracked links`);
    parsed++;
  }
  console.log(`corpus: ${corpus.length} messages (${parsed} parsed by mailparser), ${rewrittenParts} HTML parts rewritten (${qp} quoted-printable, ${b64} base64), ${links} links`);
  assert.ok(rewrittenParts >= 40 && links >= 100, 'the corpus exercised the rewrite');
});

test('corpus: the output does not depend on how the input is chunked', { skip: !available && 'no corpus' }, async () => {
  const some: CorpusMessage[] = corpus.filter((m) => /text\/html/i.test(m.data.toString('latin1'))).slice(0, 40);
  for (const m of some) {
    const whole = await rewrite(m.data, [tracking().rewrite]);
    for (const size of [1, 7, 64, 1000]) {
      const pieces = await rewrite(m.data, [tracking().rewrite], size);
      assert.ok(pieces.equals(whole), `${m.name}: chunks of ${size} bytes gave other output`);
    }
  }
});

test('a 7bit HTML part becomes quoted-printable; text/plain and the preamble stay; no filter leaves the message as it was', async () => {
  const msg = Buffer.from([
    'From: a@example.com', 'MIME-Version: 1.0', 'Content-Type: multipart/alternative; boundary="b1"', '',
    'preamble', '--b1', 'Content-Type: text/plain; charset=us-ascii', '', 'see https://example.com/x', '',
    '--b1', 'Content-Type: text/html; charset=us-ascii', '',
    `<html><body><p>${'long line '.repeat(120)}<a href="https://example.com/x?a=1&amp;b=2">x</a></p></body></html>`, '--b1--', '',
  ].join('\r\n'), 'latin1');
  const out = (await rewrite(msg, [tracking().rewrite])).toString('latin1');
  assert.match(out, /preamble\r\n--b1\r\nContent-Type: text\/plain; charset=us-ascii\r\n\r\nsee https:\/\/example.com\/x\r\n\r\n--b1\r\n/);
  assert.match(out, /Content-Type: text\/html; charset=us-ascii\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n/);
  const html = (await split(Buffer.from(out, 'latin1'))).find((p) => p.contentType === 'text/html')!;
  const text = decode(html).toString('latin1');
  assert.match(text, /<a href="https:\/\/t\.example\/t\/c\/[A-Za-z0-9_-]+">x<\/a>/);
  assert.match(text, /<img src="https:\/\/t\.example\/t\/o\/PIXEL" width="1" height="1" alt=""><\/body>/);
  assert.equal(Buffer.from(text.match(/t\/c\/([A-Za-z0-9_-]+)/)![1]!, 'base64url').toString(), 'https://example.com/x?a=1&b=2', 'the URL as the browser would read it');
  const none = await rewrite(msg, [{ part: () => undefined }]);
  assert.ok(none.equals(msg), 'with no part filter the bytes pass unchanged');
});

test('a base64 HTML part is decoded and re-encoded as base64 in 76-character lines, read right by mailparser', async () => {
  const html = `<html><body>${Array.from({ length: 60 }, (_, i) => `<p>Item ${i} <a href="https://example.com/item/${i}?ref=mail">see</a> ünïcödé</p>`).join('\n')}</body></html>`;
  const b64 = Buffer.from(html, 'utf8').toString('base64').replace(/.{76}/g, '$&\r\n');
  const msg = Buffer.from(['From: a@example.com', 'MIME-Version: 1.0', 'Content-Type: multipart/alternative; boundary="b2"', '',
    '--b2', 'Content-Type: text/plain; charset=utf-8', '', 'plain', '--b2', 'Content-Type: text/html; charset=utf-8', 'Content-Transfer-Encoding: base64', '',
    b64, '--b2--', ''].join('\r\n'), 'latin1');
  const t = tracking();
  for (const chunk of [msg.length, 13, 1]) {
    const out = await rewrite(msg, [t.rewrite], chunk);
    const part = (await split(out)).find((p) => p.contentType === 'text/html')!;
    assert.equal(part.encoding, 'base64');
    for (const line of part.body.toString('latin1').split('\r\n')) assert.ok(line.length <= 76 && /^[A-Za-z0-9+/=]*$/.test(line), line);
    const ref = new LinkRewriter(t.options(0, 'utf-8'));
    const latin1 = Buffer.from(html, 'utf8').toString('latin1');
    assert.equal(decode(part).toString('latin1'), ref.write(latin1) + ref.end());
    const parsed = await simpleParser(out);
    assert.equal((String(parsed.html).match(/https:\/\/t\.example\/t\/c\//g) ?? []).length, 60);
    assert.match(String(parsed.html), /ünïcödé/);
    assert.equal(parsed.text?.trim(), 'plain');
  }
});
