/**
 * Bounded label values for metrics: a metric's label set must never grow with traffic (no queue
 * IDs, addresses or domains), or every scrape grows and the time-series database with it.
 *
 * Owns: how an event's fields map to the few label values the metrics use.
 */
import { isBounceClass } from '../feedback/classes.js';

/** Label value for anything past a LabelSet's cap, or not of a known kind. */
export const OTHER = 'other';

/**
 * A set of label values that admits at most `cap` distinct values; later newcomers become
 * `other`. Values are cut to 64 characters. Used for names an operator configures (listeners,
 * webhook endpoints), so a bad configuration or a bug cannot blow up the label set.
 */
export class LabelSet {
  private readonly seen = new Set<string>();

  /** @param cap distinct values kept (>= 1); @param preset values admitted first (count toward cap). */
  constructor(private readonly cap: number, preset: Iterable<string> = []) {
    for (const v of preset) this.get(v);
  }

  /** The label value for `v`: itself when known or when there is room, else `other`. */
  get(v: string): string {
    const s = v.length > 64 ? v.slice(0, 64) : v;
    if (this.seen.has(s)) return s;
    if (this.seen.size >= this.cap) return OTHER;
    this.seen.add(s);
    return s;
  }
}

/**
 * The next-hop class of an event's `nextHop` key (routing/types.ts nextHopKey: "mx:DOMAIN:PORT",
 * "host:HOST:PORT"): `mx` (MX lookup), `relay` (a fixed host: relayhost or route table), `local`,
 * `none` (no next hop: routing failed, expired before a try), else `other`. Never the domain or host.
 */
export function nextHopClass(key: string | undefined): string {
  if (key === undefined || key === '') return 'none';
  const colon = key.indexOf(':');
  const prefix = colon < 0 ? key : key.slice(0, colon);
  switch (prefix) {
    case 'mx': return 'mx';
    case 'host':
    case 'relay': return 'relay';
    case 'local': return 'local';
    default: return OTHER;
  }
}

/** The class of a reply line ("550 5.7.1 ..."): `4xx`, `5xx`, or `other` (none, or not an SMTP reply). */
export function replyClass(reply: string | undefined): string {
  const c = reply?.charCodeAt(0);
  if (c === 0x34) return '4xx';
  if (c === 0x35) return '5xx';
  return OTHER;
}

const STAGES = new Set(['connect', 'mail', 'rcpt', 'data', 'api', 'auth', 'local']);

/** The rejection stage of a message.rejected event's `reason`: one of core/session.ts Rejection stages, else `other`. */
export function rejectStage(reason: string | undefined): string {
  return reason !== undefined && STAGES.has(reason) ? reason : OTHER;
}

/**
 * The label of a message.rejected event's `check` (src/policy/client-policy.ts): fixed names
 * ("access", "pregreet", "auth-throttle", "auth-busy", "data-rate", "xclient", "dmarc", "rate:NAME",
 * "rate:perNetwork.NAME") as they are, "dnsbl:ZONE" through `zones` (configured names, capped),
 * `none` when the event has no check, else `other`.
 */
export function checkLabel(check: string | undefined, zones: LabelSet): string {
  if (check === undefined) return 'none';
  if (FIXED_CHECKS.has(check) || /^rate:(perNetwork\.)?(connections|messages|recipients|unknownRecipients)PerMinute$/.test(check)) return check;
  if (check.startsWith('dnsbl:')) { const z = zones.get(check); return z === OTHER ? 'dnsbl:other' : z; }
  return OTHER;
}

const FIXED_CHECKS = new Set(['access', 'pregreet', 'auth-throttle', 'auth-busy', 'data-rate', 'xclient', 'dmarc']);

/**
 * The label of an event's `bounceClass`: one of the closed set of src/feedback/classes.ts (23
 * values) as it is, `none` when absent, else `other`.
 */
export function bounceClassLabel(c: string | undefined): string {
  if (c === undefined) return 'none';
  return isBounceClass(c) ? c : OTHER;
}
