/**
 * Test helper: a real DNS server on a loopback UDP port (dns2), answering from a small zone table;
 * with `{ tcp: true }` also on the same TCP port (RFC 7766), for truncated UDP answers.
 *
 * RFC 1035 (messages, RCODE 2 SERVFAIL, RCODE 3 NXDOMAIN), RFC 7505 (null MX), RFC 2308 (a SOA in
 * negative answers when the zone entry, or the server, names a negative TTL). Names not in the
 * table get NXDOMAIN; a listed name without records of the asked type gets NOERROR with no answer
 * (NODATA). A CNAME entry answers every type with the CNAME and the target's records (when the
 * target is in the table). Owns nothing outside tests.
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
  /** PTR records (for an in-addr.arpa / ip6.arpa name). */
  readonly ptr?: readonly string[];
  /** An alias: every question is answered with this CNAME (and the target's records). */
  readonly cname?: string;
  /** Answer only after this many ms. */
  readonly delayMs?: number;
  /** Over UDP answer with TC set and no records (the full answer only over TCP). */
  readonly truncate?: boolean;
}

export type Zones = Record<string, ZoneEntry>;

export interface DnsServerOptions {
  /** Also listen on TCP (same port). */
  readonly tcp?: boolean;
  /** Put a SOA with this MINIMUM (and TTL) into NXDOMAIN and NODATA answers (RFC 2308). */
  readonly negativeTtl?: number;
}

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

const TYPE_NAMES: Record<number, string> = { 1: 'A', 12: 'PTR', 15: 'MX', 16: 'TXT', 28: 'AAAA' };

/** Starts the server on 127.0.0.1 with an ephemeral port (or `port`). Names are matched case-insensitively. */
export async function startDnsServer(zones: Zones, port = 0, opts: DnsServerOptions = {}): Promise<DnsServerHandle> {
  const table: Map<string, ZoneEntry> = new Map(Object.entries(zones).map(([k, v]) => [k.toLowerCase().replace(/\.$/, ''), v]));
  const lookup = (n: string): ZoneEntry | undefined => table.get(n);
  const queries: string[] = [];
  const timers = new Set<NodeJS.Timeout>();
  const handle = (request: dns2.Packet, send: (r: dns2.Packet) => void, tcp: boolean): void => {
    const response = Packet.createResponseFromRequest(request);
    const q = request.questions[0];
    if (!q) return void send(response);
    const name = q.name.toLowerCase().replace(/\.$/, '');
    queries.push(`${name} ${TYPE_NAMES[q.type] ?? q.type}`);
    const entry = lookup(name);
    if (entry?.drop) return;
    response.header.aa = 1;
    const negative = (): void => {
      const ttl = entry?.ttl ?? opts.negativeTtl;
      if (opts.negativeTtl === undefined) return;
      response.authorities.push({
        name: name.split('.').slice(-2).join('.'), type: Packet.TYPE.SOA, class: Packet.CLASS.IN, ttl,
        primary: 'ns.test', admin: 'hostmaster.test', serial: 1, refresh: 3600, retry: 600, expiration: 86400, minimum: opts.negativeTtl,
      } as unknown as dns2.Packet.Resource);
    };
    if (!entry) {
      response.header.rcode = 3;
      negative();
    } else if (entry.servfail) response.header.rcode = 2;
    else if (entry.truncate && !tcp) response.header.tc = 1;
    else {
      let answers = answersFor(q.name, q.type, entry);
      if (entry.cname) {
        const target = lookup(entry.cname.toLowerCase().replace(/\.$/, ''));
        answers = [{ name: q.name, class: Packet.CLASS.IN, ttl: entry.ttl ?? 60, type: Packet.TYPE.CNAME, domain: entry.cname } as unknown as dns2.Packet.Resource,
          ...(target ? answersFor(entry.cname, q.type, target) : [])];
      }
      response.answers.push(...answers);
      if (!answers.length) negative();
    }
    if (entry?.delayMs) {
      const t = setTimeout(() => { timers.delete(t); send(response); }, entry.delayMs);
      timers.add(t);
    } else send(response);
  };
  const server = dns2.createUDPServer((request, send) => handle(request, (r) => void send(r), false));
  server.on('requestError', () => { /* malformed packets are ignored in tests */ });
  await server.listen(port, '127.0.0.1');
  const bound = server.address().port;
  let tcp: ReturnType<typeof dns2.createTCPServer> | undefined;
  if (opts.tcp) {
    tcp = dns2.createTCPServer((request, send) => handle(request, (r) => void send(r), true));
    tcp.on('requestError', () => {});
    await tcp.listen(bound, '127.0.0.1');
  }
  return {
    port: bound,
    server: `127.0.0.1:${bound}`,
    queries,
    update: (name, entry) => {
      const key = name.toLowerCase().replace(/\.$/, '');
      if (entry) table.set(key, entry);
      else table.delete(key);
    },
    close: async () => {
      for (const t of timers) clearTimeout(t);
      await Promise.all([
        new Promise<void>((resolve) => server.close(() => resolve())),
        tcp ? new Promise<void>((resolve) => tcp!.close(() => resolve())) : undefined,
      ]);
    },
  };
}

function answersFor(name: string, type: number, e: ZoneEntry): dns2.Packet.Resource[] {
  const base = { name, class: Packet.CLASS.IN, ttl: e.ttl ?? 60 };
  if (type === Packet.TYPE.MX) return (e.mx ?? []).map((m) => ({ ...base, type, exchange: m.exchange, priority: m.priority }) as dns2.Packet.Resource);
  if (type === Packet.TYPE.A) return (e.a ?? []).map((address) => ({ ...base, type, address }) as dns2.Packet.Resource);
  if (type === Packet.TYPE.AAAA) return (e.aaaa ?? []).map((address) => ({ ...base, type, address }) as dns2.Packet.Resource);
  if (type === Packet.TYPE.TXT) return (e.txt ?? []).map((data) => ({ ...base, type, data: [...data] }) as unknown as dns2.Packet.Resource);
  if (type === Packet.TYPE.PTR) return (e.ptr ?? []).map((domain) => ({ ...base, type, domain }) as unknown as dns2.Packet.Resource);
  return [];
}
