// Small loopback helpers of the stand-alone benches (scale.mjs, dkim-sign.mjs).
import { createServer, connect } from 'node:net';

/** A free TCP port on 127.0.0.1. */
export function freePort() {
  return new Promise((res) => { const s = createServer().listen(0, '127.0.0.1', () => { const p = s.address().port; s.close(() => res(p)); }); });
}

/** True when an SMTP server on 127.0.0.1:port answers 220 within 1 s. */
export function greets(port) {
  return new Promise((res) => {
    const s = connect(port, '127.0.0.1');
    const done = (v) => { s.destroy(); res(v); };
    s.setTimeout(1000, () => done(false));
    s.once('data', (d) => done(d.toString().startsWith('220')));
    s.once('error', () => done(false));
  });
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
