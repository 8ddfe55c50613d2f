/**
 * The streaming HTML link rewriter (src/tracking/html-links.ts): which links are rewritten (http and
 * https hrefs of <a>, after character references are decoded), which are not (mailto:, anchors,
 * relative links, links in comments, scripts and styles, other tags, our own tracking and
 * unsubscribe URLs), the pixel before </body> or at the end, the budget, charsets, and a fast-check
 * property: the output does not depend on where the input is cut into pieces.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { decodeAttribute, LinkRewriter, type LinkRewriteOptions } from '../../../src/tracking/html-links.js';

const PIXEL = '<img src="https://t.test/t/o/P" width="1" height="1" alt="">';

function opts(over: Partial<LinkRewriteOptions> = {}): LinkRewriteOptions {
  return {
    click: (u) => (u.startsWith('https://t.test/') ? undefined : `https://t.test/t/c/${encodeURIComponent(u)}`),
    pixel: PIXEL, charset: 'utf-8', budget: { used: 0, max: 100 }, ...over,
  };
}

function run(html: string, o: LinkRewriteOptions = opts(), cuts: readonly number[] = []): string {
  const r = new LinkRewriter(o);
  let out = '';
  let at = 0;
  for (const c of [...cuts].sort((a, b) => a - b)) {
    out += r.write(html.slice(at, c));
    at = c;
  }
  return out + r.write(html.slice(at)) + r.end();
}

const tracked = (u: string): string => `https://t.test/t/c/${encodeURIComponent(u)}`;

test('http and https hrefs of <a> are rewritten; only the href value changes', () => {
  const html = '<p><a class="x" href="https://example.com/a?b=1&amp;c=2" target=_blank>A</a> <A HREF=\'http://Example.COM/b\'>B</A> <a href=https://example.com/c>C</a></p>';
  assert.equal(run(html, opts({ pixel: undefined })),
    `<p><a class="x" href="${tracked('https://example.com/a?b=1&c=2').replace(/&/g, '&amp;')}" target=_blank>A</a> <A HREF="${tracked('http://example.com/b')}">B</A> <a href="${tracked('https://example.com/c')}">C</a></p>`);
});

test('mailto:, tel:, anchors, relative and javascript: links, other tags, comments, scripts and our own URLs stay', () => {
  const html = [
    '<a href="mailto:a@example.com">m</a>', '<a href="tel:+123">t</a>', '<a href="#top">t</a>', '<a href="/rel">r</a>',
    '<a href="javascript:alert(1)">j</a>', '<a name="x">n</a>', '<link href="https://example.com/css">', '<img src="https://example.com/i.png">',
    '<!-- <a href="https://example.com/in-comment">c</a> -->', '<!--[if mso]><a href="https://example.com/mso">o</a><![endif]-->',
    '<script>var s = "<a href=\'https://example.com/js\'>";</script>', '<style>a[href="https://example.com/css"]{}</style>',
    '<a href="https://t.test/u/TOKEN">unsubscribe</a>', '<abbr title="https://example.com">x</abbr>',
  ].join('\n');
  assert.equal(run(html, opts({ pixel: undefined })), html);
});

test('the pixel goes before the first </body>, else at the end; only once', () => {
  assert.equal(run('<html><body>x</body></html>'), `<html><body>x${PIXEL}</body></html>`);
  assert.equal(run('<BODY>x</BODY >y</body>'), `<BODY>x${PIXEL}</BODY >y</body>`);
  assert.equal(run('<p>no body tag</p>'), `<p>no body tag</p>${PIXEL}`);
  assert.equal(run('<!-- </body> --><p>x</p>'), `<!-- </body> --><p>x</p>${PIXEL}`);
});

test('the budget caps rewritten links across the parts that share it', () => {
  const budget = { used: 0, max: 2 };
  const out1 = run('<a href="https://e.com/1">1</a><a href="https://e.com/2">2</a>', opts({ budget, pixel: undefined }));
  const out2 = run('<a href="https://e.com/3">3</a>', opts({ budget, pixel: undefined }));
  assert.equal((out1.match(/t\.test\/t\/c/g) ?? []).length, 2);
  assert.equal(out2, '<a href="https://e.com/3">3</a>');
});

test('non-ASCII URLs: UTF-8 parts are read as UTF-8; another charset leaves such a link', () => {
  const utf8Bytes = Buffer.from('<a href="https://example.com/päth">x</a>', 'utf8').toString('latin1');
  assert.match(run(utf8Bytes, opts({ pixel: undefined })), new RegExp(encodeURIComponent('https://example.com/p%C3%A4th')));
  assert.equal(run(utf8Bytes, opts({ pixel: undefined, charset: 'iso-8859-1' })), utf8Bytes);
  assert.match(run('<a href="https://example.com/plain">x</a>', opts({ pixel: undefined, charset: 'iso-8859-1' })), /t\.test\/t\/c/);
});

test('character references in attribute values are decoded as HTML does', () => {
  assert.equal(decodeAttribute('a&amp;b&#38;c&#x26;d&lt;&quot;'), 'a&b&c&d<"');
  assert.equal(decodeAttribute('?a=1&copy=2'), '?a=1&copy=2', 'an unknown name stays');
  assert.equal(decodeAttribute('?a=1&amp=2'), '?a=1&amp=2', 'without ";" before "=" it stays');
  assert.equal(decodeAttribute('x&amp y'), 'x& y');
});

test('a tag longer than the limit passes unchanged; a tag cut across writes is still found', () => {
  const long = `<a title="${'x'.repeat(20_000)}" href="https://e.com/">x</a>`;
  assert.equal(run(long, opts({ pixel: undefined })), long);
  assert.match(run('<a href="https://e.com/z">z</a>', opts({ pixel: undefined }), [3, 10, 20]), /t\.test\/t\/c\/https%3A%2F%2Fe\.com%2Fz/);
});

test('property: the output does not depend on how the input is cut', () => {
  const piece = fc.constantFrom(
    '<a href="https://e.com/1">', '</a>', '<A\nHREF = "http://e.com/2?x=1&amp;y=2"\n>', '<!-- <a href="https://e.com/c"> -->',
    '<script>"<a href=https://e.com/s>"</script>', '<style>x</style>', '</body>', '<body>', 'text ', '<', '>', '&amp;', '\r\n',
    '<a href=\'mailto:x@y\'>', '<img src="x">', 'ä', '<a  data-x="a>b" href=https://e.com/3>',
  );
  fc.assert(fc.property(fc.array(piece, { maxLength: 40 }), fc.array(fc.nat(), { maxLength: 8 }), (pieces, cutsRaw) => {
    const html = pieces.join('');
    const cuts = cutsRaw.map((c) => (html.length ? c % (html.length + 1) : 0));
    assert.equal(run(html, opts(), cuts), run(html, opts()));
  }), { numRuns: 1000 });
});
