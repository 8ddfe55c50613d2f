/**
 * The server name of a TLS ClientHello read from raw bytes (src/smtpd/client-hello.ts, RFC 6066 3):
 * real ClientHellos from node's TLS client (TLS 1.3 and 1.2 only), every prefix needing more, a
 * hello split over two records, and bytes that are no ClientHello.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { connect as tlsConnect, type ConnectionOptions } from 'node:tls';
import { peekServerName } from '../../../src/smtpd/client-hello.js';

/** The first bytes a TLS client sends with `opts` (captured by a plain TCP server). */
async function helloBytes(opts: Partial<ConnectionOptions>): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const srv = createServer((sock) => {
      let buf = Buffer.alloc(0);
      sock.on('data', (d: Buffer) => {
        buf = Buffer.concat([buf, d]);
        if (buf.length >= 5 && buf.length >= 5 + buf.readUInt16BE(3)) {
          sock.destroy();
          srv.close();
          resolve(buf);
        }
      });
    });
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as { port: number }).port;
      const c = tlsConnect({ host: '127.0.0.1', port, rejectUnauthorized: false, ...opts });
      c.on('error', () => {});
    });
    setTimeout(() => reject(new Error('no ClientHello')), 5000).unref();
  });
}

test('a real ClientHello: the name, lower case without the trailing dot; every prefix needs more', async () => {
  const hello = await helloBytes({ servername: 'Mail.Example.COM.' });
  assert.deepEqual(peekServerName(hello), { kind: 'done', servername: 'mail.example.com' });
  for (let i = 0; i < hello.length; i += 7) assert.equal(peekServerName(hello.subarray(0, i)).kind, 'more', `prefix ${i}`);
  const tls12 = await helloBytes({ servername: 'other.test', maxVersion: 'TLSv1.2' });
  assert.deepEqual(peekServerName(tls12), { kind: 'done', servername: 'other.test' });
  const noName = await helloBytes({});
  assert.deepEqual(peekServerName(noName), { kind: 'done' }, 'an IP host sends no SNI');
});

test('a ClientHello split over two records is reassembled', async () => {
  const hello = await helloBytes({ servername: 'split.example' });
  const body = hello.subarray(5, 5 + hello.readUInt16BE(3));
  const cut = 40;
  const rec = (b: Buffer): Buffer => Buffer.concat([Buffer.from([22, 3, 1, b.length >> 8, b.length & 255]), b]);
  const two = Buffer.concat([rec(body.subarray(0, cut)), rec(body.subarray(cut))]);
  assert.deepEqual(peekServerName(two), { kind: 'done', servername: 'split.example' });
  assert.equal(peekServerName(two.subarray(0, 5 + cut + 3)).kind, 'more');
});

test('not a ClientHello: no name, at once', () => {
  assert.deepEqual(peekServerName(Buffer.from('EHLO client.example\r\n')), { kind: 'done' });
  assert.deepEqual(peekServerName(Buffer.from([22, 3, 1, 0, 4, 2, 0, 0, 0])), { kind: 'done' }, 'a ServerHello type');
  assert.deepEqual(peekServerName(Buffer.from([23, 3, 3, 0, 1, 0])), { kind: 'done' }, 'application data');
  assert.deepEqual(peekServerName(Buffer.from([22, 3, 1, 0xff, 0xff])), { kind: 'done' }, 'a record longer than TLS allows');
});
