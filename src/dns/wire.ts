/**
 * DNS messages on the wire (RFC 1035 4, RFC 6891 EDNS(0), RFC 2308 negative answers): the query we
 * send and the parts of a reply we read. Used by the stub client (client.ts) because node:dns
 * gives no TTLs for TXT, MX or PTR answers, and the cache (cache.ts) keeps answers for their TTL.
 *
 * Owns: encoding one question with an OPT record, decoding a reply with name compression (bounded:
 * pointers may only point backwards, names at most 255 bytes), following CNAME chains inside the
 * answer section, and the negative TTL of an NXDOMAIN/NODATA reply from its SOA. Never does I/O.
 */
import type { MxRecord, RecordData, RecordType } from './types.js';

/** Type codes (RFC 1035 3.2.2, RFC 3596, RFC 6891). */
export const TYPE_CODE: Readonly<Record<RecordType | 'CNAME' | 'SOA' | 'OPT', number>> = {
  A: 1, CNAME: 5, SOA: 6, PTR: 12, MX: 15, TXT: 16, AAAA: 28, OPT: 41,
};

/** Response codes we tell apart (RFC 1035 4.1.1). */
export const RCODE = { NOERROR: 0, FORMERR: 1, SERVFAIL: 2, NXDOMAIN: 3, NOTIMP: 4, REFUSED: 5 } as const;

/** The UDP payload size we advertise (the DNS flag day 2020 value: no IP fragmentation). */
export const EDNS_UDP_SIZE = 1232;

/** A reply that cannot be read, or a name that cannot be sent. */
export class WireError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'WireError';
  }
}

/** One resource record as read: owner name (lower case, no trailing dot), type, TTL, and where its RDATA is. */
interface Rr {
  readonly name: string;
  readonly type: number;
  readonly ttl: number;
  readonly at: number;
  readonly len: number;
}

/** The parts of a reply the client needs. */
export interface DnsReply {
  readonly id: number;
  /** Truncated (TC): ask again over TCP. */
  readonly truncated: boolean;
  readonly rcode: number;
  /** The echoed question (lower case), when there was one. */
  readonly qname?: string;
  readonly qtype?: number;
  readonly answers: readonly Rr[];
  readonly authority: readonly Rr[];
  readonly buf: Buffer;
}

/** The name in the canonical form we compare: lower case, no trailing dot. */
export function normalizeName(name: string): string {
  return name.trim().replace(/\.$/, '').toLowerCase();
}

/**
 * Encodes a query for `name` / `type` with the given 16-bit id, RD set, and an OPT record
 * (RFC 6891 6.1.2) advertising EDNS_UDP_SIZE. @throws WireError for an empty label, a label over
 * 63 bytes or a name over 255 bytes (RFC 1035 2.3.4).
 */
export function encodeQuery(id: number, name: string, type: RecordType): Buffer {
  const qname = encodeName(name);
  const b = Buffer.alloc(12 + qname.length + 4 + 11);
  b.writeUInt16BE(id & 0xffff, 0);
  b.writeUInt16BE(0x0100, 2); // RD
  b.writeUInt16BE(1, 4); // QDCOUNT
  b.writeUInt16BE(1, 10); // ARCOUNT (OPT)
  qname.copy(b, 12);
  let o = 12 + qname.length;
  b.writeUInt16BE(TYPE_CODE[type], o);
  b.writeUInt16BE(1, o + 2); // IN
  o += 4;
  b[o] = 0; // root owner name
  b.writeUInt16BE(TYPE_CODE.OPT, o + 1);
  b.writeUInt16BE(EDNS_UDP_SIZE, o + 3); // CLASS = payload size; TTL (ext. rcode, version, flags) and RDLEN stay 0
  return b;
}

function encodeName(name: string): Buffer {
  const n = name.trim().replace(/\.$/, '');
  if (n === '') return Buffer.from([0]);
  const parts: Buffer[] = [];
  let total = 1;
  for (const label of n.split('.')) {
    const l = Buffer.from(label, 'utf8');
    if (l.length === 0 || l.length > 63) throw new WireError(`bad DNS name "${name.slice(0, 80)}": label of ${l.length} bytes`);
    parts.push(Buffer.from([l.length]), l);
    total += 1 + l.length;
  }
  if (total > 255) throw new WireError(`bad DNS name "${name.slice(0, 80)}...": over 255 bytes`);
  parts.push(Buffer.from([0]));
  return Buffer.concat(parts);
}

/** Reads a possibly compressed name at `at`. @returns the name (lower case) and the offset after it. @throws WireError. */
function readName(buf: Buffer, at: number): { name: string; next: number } {
  const labels: string[] = [];
  let pos = at;
  let next = -1;
  let length = 0;
  for (let hops = 0; hops < 128; hops++) {
    if (pos >= buf.length) throw new WireError('name runs past the end of the message');
    const len = buf[pos]!;
    if (len === 0) {
      if (next < 0) next = pos + 1;
      return { name: labels.join('.').toLowerCase(), next };
    }
    if ((len & 0xc0) === 0xc0) {
      if (pos + 1 >= buf.length) throw new WireError('truncated name pointer');
      const target = ((len & 0x3f) << 8) | buf[pos + 1]!;
      if (target >= pos) throw new WireError('name pointer does not point backwards');
      if (next < 0) next = pos + 2;
      pos = target;
      continue;
    }
    if ((len & 0xc0) !== 0) throw new WireError('unknown label type');
    if (pos + 1 + len > buf.length) throw new WireError('label runs past the end of the message');
    length += len + 1;
    if (length > 255) throw new WireError('name over 255 bytes');
    labels.push(buf.toString('latin1', pos + 1, pos + 1 + len));
    pos += 1 + len;
  }
  throw new WireError('too many name pointers');
}

function readRrs(buf: Buffer, at: number, count: number, out: Rr[]): number {
  let o = at;
  for (let i = 0; i < count; i++) {
    const { name, next } = readName(buf, o);
    if (next + 10 > buf.length) throw new WireError('truncated resource record');
    const type = buf.readUInt16BE(next);
    const ttl = buf.readUInt32BE(next + 4) & 0x7fffffff; // RFC 2181 8: the top bit set means 0
    const len = buf.readUInt16BE(next + 8);
    if (next + 10 + len > buf.length) throw new WireError('truncated RDATA');
    out.push({ name, type, ttl, at: next + 10, len });
    o = next + 10 + len;
  }
  return o;
}

/**
 * Decodes a reply: header, question, answer and authority sections (additional is not read).
 * @throws WireError for a message that is not a reply or cannot be read.
 */
export function decodeReply(buf: Buffer): DnsReply {
  if (buf.length < 12) throw new WireError('message shorter than a DNS header');
  const flags = buf.readUInt16BE(2);
  if ((flags & 0x8000) === 0) throw new WireError('not a reply (QR is 0)');
  const qd = buf.readUInt16BE(4);
  const an = buf.readUInt16BE(6);
  const ns = buf.readUInt16BE(8);
  const truncated = (flags & 0x0200) !== 0;
  let o = 12;
  let qname: string | undefined;
  let qtype: number | undefined;
  if (qd > 1) throw new WireError(`${qd} questions in a reply`);
  if (qd === 1) {
    const q = readName(buf, o);
    if (q.next + 4 > buf.length) throw new WireError('truncated question');
    qname = q.name;
    qtype = buf.readUInt16BE(q.next);
    o = q.next + 4;
  }
  const answers: Rr[] = [];
  const authority: Rr[] = [];
  // A truncated reply may end anywhere: keep what could be read (the caller asks again over TCP).
  try {
    o = readRrs(buf, o, an, answers);
    readRrs(buf, o, ns, authority);
  } catch (err) {
    if (!truncated) throw err;
  }
  return { id: buf.readUInt16BE(0), truncated, rcode: flags & 0x000f, ...(qname !== undefined ? { qname, qtype } : {}), answers, authority, buf };
}

function rdata(reply: DnsReply, rr: Rr, type: RecordType): RecordData[RecordType] {
  const b = reply.buf;
  switch (type) {
    case 'A':
      if (rr.len !== 4) throw new WireError('A record of the wrong length');
      return `${b[rr.at]}.${b[rr.at + 1]}.${b[rr.at + 2]}.${b[rr.at + 3]}`;
    case 'AAAA': {
      if (rr.len !== 16) throw new WireError('AAAA record of the wrong length');
      const groups: string[] = [];
      for (let i = 0; i < 16; i += 2) groups.push(b.readUInt16BE(rr.at + i).toString(16));
      return compressV6(groups);
    }
    case 'MX': {
      if (rr.len < 3) throw new WireError('MX record too short');
      const mx: MxRecord = { priority: b.readUInt16BE(rr.at), exchange: readName(b, rr.at + 2).name };
      return mx;
    }
    case 'PTR':
      return readName(b, rr.at).name;
    case 'TXT': {
      const strings: string[] = [];
      let o = rr.at;
      const end = rr.at + rr.len;
      while (o < end) {
        const n = b[o]!;
        if (o + 1 + n > end) throw new WireError('TXT character-string runs past its record');
        strings.push(b.toString('latin1', o + 1, o + 1 + n));
        o += 1 + n;
      }
      return strings;
    }
  }
}

/** RFC 5952 text form of eight hex groups (the longest run of two or more zero groups as "::"). */
function compressV6(groups: string[]): string {
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8;) {
    if (groups[i] !== '0') { i++; continue; }
    let j = i;
    while (j < 8 && groups[j] === '0') j++;
    if (j - i > bestLen) { best = i; bestLen = j - i; }
    i = j;
  }
  if (best < 0) return groups.join(':');
  return `${groups.slice(0, best).join(':')}::${groups.slice(best + bestLen).join(':')}`;
}

/**
 * The records of `type` for `qname` in the answer section, following CNAMEs (RFC 1034 3.6.2) from
 * `qname`, and the smallest TTL among them and the CNAMEs used. @throws WireError for bad RDATA.
 */
export function answerRecords<T extends RecordType>(reply: DnsReply, qname: string, type: T): { records: RecordData[T][]; ttl: number } {
  const names = new Set([normalizeName(qname)]);
  let ttl = Number.MAX_SAFE_INTEGER;
  // A chain is at most as long as the answer section: bounded.
  for (let grew = true, round = 0; grew && round <= reply.answers.length; round++) {
    grew = false;
    for (const rr of reply.answers) {
      if (rr.type !== TYPE_CODE.CNAME || !names.has(rr.name)) continue;
      const target = readName(reply.buf, rr.at).name;
      if (!names.has(target)) {
        names.add(target);
        ttl = Math.min(ttl, rr.ttl);
        grew = true;
      }
    }
  }
  const code = TYPE_CODE[type];
  const records: RecordData[T][] = [];
  for (const rr of reply.answers) {
    if (rr.type !== code || !names.has(rr.name)) continue;
    records.push(rdata(reply, rr, type) as RecordData[T]);
    ttl = Math.min(ttl, rr.ttl);
  }
  return { records, ttl: records.length ? ttl : 0 };
}

/**
 * How long a negative answer may be cached (RFC 2308 5): the smaller of the SOA record's TTL and
 * its MINIMUM field, from the authority section. @returns undefined when there is no readable SOA.
 */
export function negativeTtl(reply: DnsReply): number | undefined {
  for (const rr of reply.authority) {
    if (rr.type !== TYPE_CODE.SOA) continue;
    try {
      const mname = readName(reply.buf, rr.at);
      const rname = readName(reply.buf, mname.next);
      const o = rname.next;
      if (o + 20 > rr.at + rr.len) return undefined;
      return Math.min(rr.ttl, reply.buf.readUInt32BE(o + 16) & 0x7fffffff);
    } catch {
      return undefined;
    }
  }
  return undefined;
}
