/**
 * Test helper: a real DNS server on a loopback UDP port (dns2), answering from a small zone table.
 *
 * RFC 1035 (messages, RCODE 2 SERVFAIL, RCODE 3 NXDOMAIN), RFC 7505 (null MX). Names not in the
 * table get NXDOMAIN; a listed name without records of the asked type gets NOERROR with no answer
 * (NODATA). Owns nothing outside tests.
 */
import dns2 from 'dns2';

const { Packet } = dns2;

/** Records for one name. Use `mx: [{ exchange: '', priority: 0 }]` for a null MX. */
export interface ZoneEntry {
  readonly mx?: readonly { exchange: string; priority: number }[];
  readonly a?: readonly string[];
  readonly aaaa?: readonly string[];
  /** TXT records, each a list of character-strings (each at most 255 bytes; RFC 1035 3.3.14). */
  readonly txt?: readonly (readonly string[])[];
  /** Answer SERVFAIL (RCODE 2) for every question about this name. */
  readonly servfail?: boolean;
  /** Never answer (for timeout tests). */
  readonly drop?: boolean;
  /** TTL of the answers, seconds (default 60). */
  readonly ttl?: number;
}

export type Zones = Record<string, ZoneEntry>;

export interface DnsServerHandle {
  readonly port: number;
  /** "127.0.0.1:port", ready for createResolver({servers}). */
  readonly server: string;
  /** Questions seen, as "NAME TYPE" (e.g. "example.com MX"). */
  readonly queries: string[];
  /** Replaces (or, with undefined, removes) the records of one name while the server runs. */
  update(name: string, entry: ZoneEntry | undefined): void;
  close(): Promise<void>;
}

const TYPE_NAMES: Record<number, string> = { 1: 'A', 15: 'MX', 16: 'TXT', 28: 'AAAA' };

/** Starts the server on 127.0.0.1 with an ephemeral port (or `port`). Names are matched case-insensitively. */
export async function startDnsServer(zones: Zones, port = 0): Promise<DnsServerHandle> {
  const table: Map<string, ZoneEntry> = new Map(Object.entries(zones).map(([k, v]) => [k.toLowerCase().replace(/\.$/, ''), v]));
  const queries: string[] = [];
  const server = dns2.createUDPServer((request, send) => {
    const response = Packet.createResponseFromRequest(request);
    const q = request.questions[0];
    if (!q) return void send(response);
    const name = q.name.toLowerCase().replace(/\.$/, '');
    queries.push(`${name} ${TYPE_NAMES[q.type] ?? q.type}`);
    const entry = table.get(name);
    if (entry?.drop) return;
    response.header.aa = 1;
    if (!entry) response.header.rcode = 3;
    else if (entry.servfail) response.header.rcode = 2;
    else response.answers.push(...answersFor(q.name, q.type, entry));
    void send(response);
  });
  server.on('requestError', () => { /* malformed packets are ignored in tests */ });
  await server.listen(port, '127.0.0.1');
  const bound = server.address().port;
  return {
    port: bound,
    server: `127.0.0.1:${bound}`,
    queries,
    update: (name, entry) => {
      const key = name.toLowerCase().replace(/\.$/, '');
      if (entry) table.set(key, entry);
      else table.delete(key);
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

function answersFor(name: string, type: number, e: ZoneEntry): dns2.Packet.Resource[] {
  const base = { name, class: Packet.CLASS.IN, ttl: e.ttl ?? 60 };
  if (type === Packet.TYPE.MX) return (e.mx ?? []).map((m) => ({ ...base, type, exchange: m.exchange, priority: m.priority }) as dns2.Packet.Resource);
  if (type === Packet.TYPE.A) return (e.a ?? []).map((address) => ({ ...base, type, address }) as dns2.Packet.Resource);
  if (type === Packet.TYPE.AAAA) return (e.aaaa ?? []).map((address) => ({ ...base, type, address }) as dns2.Packet.Resource);
  if (type === Packet.TYPE.TXT) return (e.txt ?? []).map((data) => ({ ...base, type, data: [...data] }) as unknown as dns2.Packet.Resource);
  return [];
}
