/**
 * Live configuration reload (SIGHUP): which keys a running Postline takes over from a freshly
 * loaded configuration, and which need a restart.
 *
 * The running parts share one PostlineConfig object and read these keys at each use (a new SMTP
 * command, a new delivery attempt, a new TLS session), so the reload updates that object in place:
 * established SMTP sessions and deliveries in flight carry on; what they do next follows the new
 * values.
 *
 * Live: `suppression.*`, `local.*` (routes, aliases, maildir, http, lmtp: the router, policy, cleanup and the agents read them again for the
 * next recipient, message or delivery; the LMTP pool's maxConnections, connectionsPerTarget and idleTimeoutMs only at a restart), `limits.*` (but `limits.auth.windowMs` restarts the AUTH counts), `timeouts.*`, `policy.*` (DNS lists, their resolver and cache are rebuilt when they changed; trustedProxies, xclientNetworks, xforwardNetworks), `relay.*`, `received.*`, `events.*` (retention), `tls.cert` / `tls.key` / `tls.certificates` (files read again; new TLS sessions), and
 * `delivery.` relayhost, routes, mxPort, tls, tlsPolicies, mtaSts, chunking, heloName, retry,
 * maxQueueLifetimeMs, bounceQueueLifetimeMs, delayWarningMs, doubleBounce, connectTimeoutMs,
 * commandTimeoutMs, dataDoneTimeoutMs, transactionTimeoutMs, recipientsPerTransaction (a pooled
 * connection opened under another TLS policy is not reused), and traffic shaping: shaping,
 * throttlePatterns, connectionsPerDestination, messagesPerConnection (the scheduler applies them to
 * the next delivery; src/scheduler/shaping.ts).
 * `tracking.*`, `unsubscribe.*`, `feedbackId.*` (src/tracking/ reads them for each new message and request; a changed
 * tracking.secret makes links sent before it fail).
 * `webhooks` (the whole list: the webhook manager, src/webhooks/manager.ts, is given the new list and
 * restarts the dispatchers of endpoints that changed; stored cursors are kept by name).
 * `dkim` (the whole section: main.ts loads the new keys and the next message is signed with them;
 * keys that fail to load are logged and the running ones kept). `auth` and `arc` (main.ts builds
 * the verifier again: the next message uses them; a changed auth.dns or auth.dnsCache starts an
 * empty cache; an ARC key that fails to load is logged and the running settings kept).
 * Restart needed (a changed value is logged and ignored): hostname, dataDir, listeners (proxyProtocol and tlsPolicy too), log, metrics, http, sendmail (its `origin` is read by each `postline sendmail` run anyway), and
 * every other `delivery.` key (dns, sourceAddress, maxConnections, idleTimeoutMs, scanIntervalMs, ...).
 */
import { isDeepStrictEqual } from 'node:util';
import type { PostlineConfig } from './schema.js';

/** `delivery.` keys taken over live. */
export const LIVE_DELIVERY_KEYS = [
  'relayhost', 'routes', 'mxPort', 'tls', 'tlsPolicies', 'mtaSts', 'chunking', 'heloName', 'retry', 'maxQueueLifetimeMs', 'bounceQueueLifetimeMs',
  'delayWarningMs', 'doubleBounce', 'connectTimeoutMs', 'commandTimeoutMs', 'dataDoneTimeoutMs',
  'transactionTimeoutMs', 'recipientsPerTransaction', 'shaping', 'throttlePatterns', 'connectionsPerDestination', 'messagesPerConnection',
] as const satisfies readonly (keyof PostlineConfig['delivery'])[];

/** Top-level sections taken over whole. */
const LIVE_SECTIONS = ['limits', 'timeouts', 'relay', 'tls', 'received', 'events', 'policy', 'local', 'tracking', 'unsubscribe', 'feedbackId', 'suppression'] as const;

/** What a reload did: keys applied, and keys that changed but need a restart (dotted paths). */
export interface LiveReloadResult {
  readonly applied: string[];
  readonly needRestart: string[];
}

/**
 * Copies the live keys of `fresh` into `running` (in place) and lists changed keys that need a
 * restart. `fresh` must be a validated configuration (loadConfig). Never throws.
 */
export function applyLiveConfig(running: PostlineConfig, fresh: PostlineConfig): LiveReloadResult {
  const applied: string[] = [];
  const needRestart: string[] = [];
  const target = running as unknown as Record<string, Record<string, unknown>>;
  const source = fresh as unknown as Record<string, Record<string, unknown>>;
  for (const section of LIVE_SECTIONS) {
    const dst = target[section]!;
    const src = source[section]!;
    for (const k of new Set([...Object.keys(dst), ...Object.keys(src)])) {
      if (isDeepStrictEqual(dst[k], src[k])) continue;
      if (src[k] === undefined) delete dst[k];
      else dst[k] = src[k];
      applied.push(`${section}.${k}`);
    }
  }
  const d = target.delivery!;
  const fd = source.delivery!;
  const live = new Set<string>(LIVE_DELIVERY_KEYS);
  for (const k of new Set([...Object.keys(d), ...Object.keys(fd)])) {
    if (isDeepStrictEqual(d[k], fd[k])) continue;
    if (!live.has(k)) { needRestart.push(`delivery.${k}`); continue; }
    if (fd[k] === undefined) delete d[k];
    else d[k] = fd[k];
    applied.push(`delivery.${k}`);
  }
  if (!isDeepStrictEqual(running.dkim, fresh.dkim)) {
    running.dkim = fresh.dkim;
    applied.push('dkim');
  }
  for (const k of ['auth', 'arc'] as const) {
    if (isDeepStrictEqual(running[k], fresh[k])) continue;
    if (fresh[k] === undefined) delete (running as Partial<PostlineConfig>)[k];
    else (running as Record<string, unknown>)[k] = fresh[k];
    applied.push(k);
  }
  if (!isDeepStrictEqual(running.webhooks, fresh.webhooks)) {
    running.webhooks = fresh.webhooks;
    applied.push('webhooks');
  }
  if (!isDeepStrictEqual(running.sendmail, fresh.sendmail)) needRestart.push('sendmail');
  for (const k of ['hostname', 'dataDir', 'listeners', 'log', 'metrics', 'http'] as const) {
    if (!isDeepStrictEqual(running[k], fresh[k])) needRestart.push(k);
  }
  return { applied, needRestart };
}
