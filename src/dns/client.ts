/**
 * A small DNS stub client (RFC 1035 4.2): one question to the configured recursive servers over
 * UDP, again over TCP when the reply is truncated (RFC 7766), with TTLs in the answer (node:dns
 * gives TTLs for A and AAAA only). Used by `Resolver.lookup` (resolver.ts).
 *
 * Owns: server order and tries (every server once per try, like c-ares), the per-try timeout, the
 * checks that make a reply ours (a connected UDP socket only hears its server; the random 16-bit
 * id and the echoed question must match, else the datagram is ignored), and mapping replies to
 * records or DnsError kinds (NXDOMAIN: 'nxdomain', NOERROR without records: 'nodata', SERVFAIL,
 * REFUSED, timeouts, network errors: the next server, finally 'temporary').
 */
import { randomInt } from 'node:crypto';
import { createSocket } from 'node:dgram';
import { isIP, connect } from 'node:net';
import { DnsError, type RecordData, type RecordSet, type RecordType } from './types.js';
import { answerRecords, decodeReply, encodeQuery, negativeTtl, normalizeName, RCODE, TYPE_CODE, WireError, type DnsReply } from './wire.js';

/** One server address. */
export interface DnsServer {
  readonly host: string;
  readonly port: number;
}

export interface StubOptions {
  readonly servers: readonly DnsServer[];
  /** Per-try timeout, ms (a try asks each server in turn). */
  readonly timeoutMs: number;
  /** Tries over the whole server list. */
  readonly tries: number;
}

/**
 * Parses "1.2.3.4", "1.2.3.4:53", "::1", "[::1]:5353" (the forms of `delivery.dns.servers` and of
 * node's getServers()). @throws TypeError when it is not an IP address with an optional port.
 */
export function parseServer(s: string): DnsServer {
  const t = s.trim();
  let host = t;
  let port = 53;
  const bracket = /^\[([^\]]+)\](?::(\d+))?$/.exec(t);
  if (bracket) {
    host = bracket[1]!;
    if (bracket[2]) port = Number(bracket[2]);
  } else if (isIP(t) !== 6) {
    const m = /^([^:]+):(\d+)$/.exec(t);
    if (m) {
      host = m[1]!;
      port = Number(m[2]);
    }
  }
  if (!isIP(host) || !Number.isInteger(port) || port < 1 || port > 65535) throw new TypeError(`not a DNS server address: "${s}"`);
  return { host, port };
}

type Outcome = { ok: true; reply: DnsReply } | { ok: false; why: string };

/** True when `reply` answers our question. */
function matches(reply: DnsReply, id: number, qname: string, qtype: number): boolean {
  return reply.id === id && reply.qname === qname && reply.qtype === qtype;
}

function askUdp(server: DnsServer, query: Buffer, id: number, qname: string, qtype: number, timeoutMs: number): Promise<Outcome> {
  return new Promise((resolve) => {
    const sock = createSocket(isIP(server.host) === 6 ? 'udp6' : 'udp4');
    let done = false;
    const finish = (o: Outcome): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock.close();
      resolve(o);
    };
    const timer = setTimeout(() => finish({ ok: false, why: 'timeout' }), timeoutMs);
    sock.on('error', (err) => finish({ ok: false, why: err.message }));
    sock.on('message', (msg) => {
      let reply: DnsReply;
      try {
        reply = decodeReply(msg);
      } catch {
        return; // not a DNS reply we can read: keep waiting for ours
      }
      if (matches(reply, id, qname, qtype)) finish({ ok: true, reply });
    });
    sock.connect(server.port, server.host, () => {
      sock.send(query, (err) => { if (err) finish({ ok: false, why: err.message }); });
    });
  });
}

function askTcp(server: DnsServer, query: Buffer, id: number, qname: string, qtype: number, timeoutMs: number): Promise<Outcome> {
  return new Promise((resolve) => {
    const sock = connect({ host: server.host, port: server.port });
    let done = false;
    let got = Buffer.alloc(0);
    const finish = (o: Outcome): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock.destroy();
      resolve(o);
    };
    const timer = setTimeout(() => finish({ ok: false, why: 'timeout' }), timeoutMs);
    sock.on('error', (err) => finish({ ok: false, why: err.message }));
    sock.on('close', () => finish({ ok: false, why: 'connection closed' }));
    sock.on('connect', () => {
      const len = Buffer.alloc(2);
      len.writeUInt16BE(query.length);
      sock.write(Buffer.concat([len, query]));
    });
    sock.on('data', (chunk: Buffer) => {
      got = Buffer.concat([got, chunk]);
      if (got.length > 65537) return finish({ ok: false, why: 'reply too long' });
      if (got.length < 2 || got.length < 2 + got.readUInt16BE(0)) return;
      try {
        const reply = decodeReply(got.subarray(2, 2 + got.readUInt16BE(0)));
        finish(matches(reply, id, qname, qtype) ? { ok: true, reply } : { ok: false, why: 'reply to another question' });
      } catch (err) {
        finish({ ok: false, why: (err as Error).message });
      }
    });
  });
}

/**
 * Asks for `type` records of `name`. @returns the records and their TTL, seconds.
 * @throws DnsError: 'nxdomain' or 'nodata' (with the negative TTL when the reply had a SOA), or
 *         'temporary' when no server gave a usable answer; also 'nxdomain' for a name that cannot
 *         be sent (an empty or over-long label).
 */
export async function stubQuery<T extends RecordType>(opts: StubOptions, name: string, type: T): Promise<RecordSet<RecordData[T]>> {
  const qname = normalizeName(name);
  const qtype = TYPE_CODE[type];
  let query: Buffer;
  const id = randomInt(0, 0x10000);
  try {
    query = encodeQuery(id, qname, type);
  } catch (err) {
    throw new DnsError('nxdomain', `${name} ${type}: ${(err as Error).message}`, name);
  }
  if (!opts.servers.length) throw new DnsError('temporary', `${name} ${type}: no DNS servers configured`, name);
  let last = 'no answer';
  for (let t = 0; t < Math.max(1, opts.tries); t++) {
    for (const server of opts.servers) {
      let o = await askUdp(server, query, id, qname, qtype, opts.timeoutMs);
      if (o.ok && o.reply.truncated) o = await askTcp(server, query, id, qname, qtype, opts.timeoutMs);
      if (!o.ok) {
        last = o.why;
        continue;
      }
      const r = o.reply;
      if (r.rcode === RCODE.NXDOMAIN) throw new DnsError('nxdomain', `${name} ${type}: name does not exist`, name, negativeTtl(r));
      if (r.rcode !== RCODE.NOERROR) {
        last = r.rcode === RCODE.SERVFAIL ? 'SERVFAIL' : r.rcode === RCODE.REFUSED ? 'REFUSED' : `RCODE ${r.rcode}`;
        continue;
      }
      let got: { records: RecordData[T][]; ttl: number };
      try {
        got = answerRecords(r, qname, type);
      } catch (err) {
        last = err instanceof WireError ? err.message : String(err);
        continue;
      }
      if (!got.records.length) throw new DnsError('nodata', `${name} ${type}: no ${type} records`, name, negativeTtl(r));
      return got;
    }
  }
  throw new DnsError('temporary', `${name} ${type}: lookup failed (${last})`, name);
}

/**
 * The reverse-lookup name of an address (RFC 1035 3.5 in-addr.arpa, RFC 3596 2.5 ip6.arpa).
 * @throws TypeError when `address` is not an IP address.
 */
export function reverseName(address: string): string {
  const a = address.replace(/^::ffff:(?=\d+\.\d+\.\d+\.\d+$)/i, '');
  const fam = isIP(a);
  if (fam === 4) return `${a.split('.').reverse().join('.')}.in-addr.arpa`;
  if (fam !== 6) throw new TypeError(`not an IP address: "${address}"`);
  let v6 = a;
  const v4 = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(v6); // an IPv4 tail ("64:ff9b::192.0.2.1") as two groups
  if (v4) {
    const [b0, b1, b2, b3] = v4.slice(1).map(Number) as [number, number, number, number];
    v6 = v6.slice(0, v4.index) + `${((b0 << 8) | b1).toString(16)}:${((b2 << 8) | b3).toString(16)}`;
  }
  const [head = '', tail = ''] = v6.includes('::') ? v6.split('::') : [v6, ''];
  const h = head ? head.split(':') : [];
  const tl = tail ? tail.split(':') : [];
  const groups = [...h, ...Array(8 - h.length - tl.length).fill('0'), ...tl];
  return `${groups.map((g) => g.padStart(4, '0')).join('').split('').reverse().join('.')}.ip6.arpa`;
}
