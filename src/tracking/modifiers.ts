/**
 * The tracking modifiers of cleanup's chain (cleanup/modifiers.ts), made per message:
 *
 * - `tracking` (stage 'rewrite'): for mail that opts in (tracking.enabled, and the message asks
 *   for it, or its API key or sender is listed), an HTML rewrite (html-links.ts) whose links point
 *   at BASE/t/c/TOKEN and whose first text/html part gets the pixel BASE/t/o/TOKEN.
 * - `list-headers` (stage 'add'): List-Unsubscribe and List-Unsubscribe-Post (RFC 2369 3.2,
 *   RFC 8058 3.1) for mail that opts in by API key, tag or sender; Feedback-ID (Gmail's feedback
 *   loop) from the message's tags and metadata. Added at the header, so the 'sign' stage (DKIM)
 *   covers them (its default h= list names all three). A message that already has such a field
 *   keeps its own and gets none of ours.
 *
 * Only our own users' mail (ModifierContext.trusted), never DSNs. Tokens (tokens.ts) name the
 * queue ID and the recipient: every API recipient is a queue entry of its own, so its links are its
 * own. SMTP mail with several recipients shares one body: its tracking tokens name no recipient
 * (message-level events), and it gets no List-Unsubscribe (an unsubscribe must name who).
 */
import { domainToASCII } from 'node:url';
import type { HeaderView, MessageModifier, ModifierContext, ModifierFactory } from '../cleanup/modifiers.js';
import type { HtmlPartFilter, HtmlPartInfo } from '../cleanup/body-rewrite.js';
import type { MessageMeta } from '../core/session.js';
import type { PostlineConfig } from '../config/schema.js';
import { escapeAttribute, LinkRewriter } from './html-links.js';
import type { LinkSigner } from './tokens.js';
import { MAILTO_PREFIX } from './engagement.js';

/** The configuration keys read (at each message: live reload). */
export type TrackingSettings = Pick<PostlineConfig, 'tracking' | 'unsubscribe' | 'feedbackId' | 'http' | 'hostname'>;

/** What the factories need. */
export interface TrackingModifierDeps {
  readonly config: () => TrackingSettings;
  readonly signer: () => LinkSigner;
}

/** The sender domain of an envelope sender, lower case A-label; '' for the null sender or none. */
export function senderDomain(mailFrom: string): string {
  const at = mailFrom.lastIndexOf('@');
  if (at < 0) return '';
  return domainToASCII(mailFrom.slice(at + 1)).toLowerCase();
}

/** True when `mailFrom` is listed: as an address, or by its domain or a parent domain. */
export function senderListed(list: readonly string[], mailFrom: string): boolean {
  if (!list.length || !mailFrom) return false;
  const addr = mailFrom.toLowerCase();
  if (list.includes(addr)) return true;
  for (let d = senderDomain(mailFrom); d; d = d.includes('.') ? d.slice(d.indexOf('.') + 1) : '') {
    if (list.includes(d)) return true;
  }
  return false;
}

/** The http listener's base URL (the default tracking host). */
function listenerBase(c: TrackingSettings): string | undefined {
  const h = c.http;
  if (!h) return undefined;
  let host = h.address === '0.0.0.0' || h.address === '::' ? c.hostname : h.address;
  if (host.includes(':')) host = `[${host}]`;
  return `${h.tls ? 'https' : 'http'}://${host}:${h.port}`;
}

/** A base URL in the form tracking URLs are compared in (WHATWG-normalised, no trailing "/"). */
function normalised(base: string): string {
  try {
    return new URL(base).href.replace(/\/+$/, '');
  } catch {
    return base;
  }
}

/** The tracking base URL for mail from `mailFrom`: tracking.hosts (the domain or a parent), tracking.baseUrl, the http listener. */
export function trackingBase(c: TrackingSettings, mailFrom: string): string | undefined {
  for (let d = senderDomain(mailFrom); d; d = d.includes('.') ? d.slice(d.indexOf('.') + 1) : '') {
    const h = c.tracking.hosts[d];
    if (h) return normalised(h);
  }
  const b = c.tracking.baseUrl ?? listenerBase(c);
  return b ? normalised(b) : undefined;
}

/** The unsubscribe base URL: unsubscribe.baseUrl, else the tracking base. */
export function unsubscribeBase(c: TrackingSettings, mailFrom: string): string | undefined {
  return c.unsubscribe.baseUrl ? normalised(c.unsubscribe.baseUrl) : trackingBase(c, mailFrom);
}

/** The message's metadata: the submission's (ctx.meta) over the X-Postline-* fields', field by field. */
function metaOf(ctx: ModifierContext, view: HeaderView): MessageMeta {
  return { ...view.meta, ...ctx.meta };
}

const ownMail = (ctx: ModifierContext): boolean => ctx.trusted && ctx.role !== 'dsn';
const soleRecipient = (ctx: ModifierContext): string => (ctx.envelope.recipients.length === 1 ? ctx.envelope.recipients[0]!.address : '');

/** Whether opens and clicks are tracked for this message (undefined: neither). */
export function trackingFor(c: TrackingSettings, ctx: ModifierContext, meta: MessageMeta): { opens: boolean; clicks: boolean } | undefined {
  const t = c.tracking;
  if (!t.enabled || !ownMail(ctx)) return undefined;
  const asked = meta.tracking;
  const listed = (ctx.origin.apiKey !== undefined && t.apiKeys.includes(ctx.origin.apiKey)) || senderListed(t.senders, ctx.envelope.mailFrom);
  if (!asked && !listed) return undefined;
  const opens = asked?.opens ?? t.opens;
  const clicks = asked?.clicks ?? t.clicks;
  return opens || clicks ? { opens, clicks } : undefined;
}

/** The 'rewrite' stage factory: tracking links and the open pixel. */
export function trackingRewriter(deps: TrackingModifierDeps): ModifierFactory {
  return {
    name: 'tracking',
    stage: 'rewrite',
    create(ctx: ModifierContext): MessageModifier | undefined {
      const c = deps.config();
      if (!c.tracking.enabled || !ownMail(ctx)) return undefined;
      return {
        header(view) {
          const want = trackingFor(c, ctx, metaOf(ctx, view));
          const base = want ? trackingBase(c, ctx.envelope.mailFrom) : undefined;
          if (!want || !base) return undefined;
          const signer = deps.signer();
          const recipient = soleRecipient(ctx);
          const skip = [`${base}/t/`, `${unsubscribeBase(c, ctx.envelope.mailFrom) ?? base}/u/`];
          const click = want.clicks
            ? (url: string) => (skip.some((p) => url.startsWith(p)) ? undefined : `${base}/t/c/${signer.sign({ kind: 'click', queueId: ctx.queueId, recipient, url })}`)
            : undefined;
          const pixel = want.opens
            ? `<img src="${escapeAttribute(`${base}/t/o/${signer.sign({ kind: 'open', queueId: ctx.queueId, recipient })}`)}" width="1" height="1" alt="">`
            : undefined;
          const budget = { used: 0, max: c.tracking.maxLinks };
          return {
            html: {
              part(info: HtmlPartInfo): HtmlPartFilter {
                return new LinkRewriter({
                  ...(click ? { click } : {}), ...(pixel && info.index === 0 ? { pixel } : {}), charset: info.charset, budget,
                });
              },
            },
          };
        },
      };
    },
  };
}

/** Printable ASCII without ":" (a Feedback-ID part), at most 64 characters. */
function feedbackPart(v: string | undefined): string {
  return (v ?? '').replace(/[^\x21-\x39\x3b-\x7e]/g, '').slice(0, 64);
}

/** The value of one feedbackId.fields entry for this message. */
export function feedbackValue(spec: string, meta: MessageMeta): string {
  const i = spec.indexOf(':');
  const kind = spec.slice(0, i);
  const name = spec.slice(i + 1);
  if (kind === 'value') return feedbackPart(name);
  if (kind === 'metadata') return feedbackPart(meta.metadata?.[name]);
  const tag = meta.tags?.find((t) => t.startsWith(`${name}:`) || t.startsWith(`${name}=`));
  return feedbackPart(tag?.slice(name.length + 1));
}

/** The List-Unsubscribe fields for this message, or [] when it does not opt in. */
function unsubscribeFields(c: TrackingSettings, ctx: ModifierContext, meta: MessageMeta, signer: () => LinkSigner): string[] {
  const u = c.unsubscribe;
  const recipient = soleRecipient(ctx);
  if (!u.enabled || !ownMail(ctx) || !recipient || !ctx.envelope.mailFrom) return [];
  const byKey = ctx.origin.apiKey !== undefined && u.apiKeys.includes(ctx.origin.apiKey);
  const byTag = u.tags.length > 0 && (meta.tags ?? []).some((t) => u.tags.includes(t));
  if (!byKey && !byTag && !senderListed(u.senders, ctx.envelope.mailFrom)) return [];
  const base = unsubscribeBase(c, ctx.envelope.mailFrom);
  if (!base) return [];
  const token = signer().sign({ kind: 'unsubscribe', queueId: ctx.queueId, recipient, scope: senderDomain(ctx.envelope.mailFrom) });
  const mailto = u.mailtoDomain ? `,\r\n <mailto:${MAILTO_PREFIX}${token}@${u.mailtoDomain}>` : '';
  return [`List-Unsubscribe: <${base}/u/${token}>${mailto}\r\n`, 'List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n'];
}

/** The 'add' stage factory: List-Unsubscribe, List-Unsubscribe-Post and Feedback-ID. */
export function listHeaders(deps: TrackingModifierDeps): ModifierFactory {
  return {
    name: 'list-headers',
    stage: 'add',
    create(ctx: ModifierContext): MessageModifier | undefined {
      const c = deps.config();
      if ((!c.unsubscribe.enabled && !c.feedbackId.enabled) || !ownMail(ctx)) return undefined;
      return {
        header(view) {
          if (!view.complete) return undefined;
          const meta = metaOf(ctx, view);
          const has = (n: string): boolean => view.fields.some((f) => f.name.toLowerCase() === n);
          const add: string[] = [];
          if (!has('list-unsubscribe') && !has('list-unsubscribe-post')) add.push(...unsubscribeFields(c, ctx, meta, deps.signer));
          const f = c.feedbackId;
          if (f.enabled && f.senderId && !has('feedback-id')) {
            add.push(`Feedback-ID: ${[...f.fields.map((s) => feedbackValue(s, meta)), f.senderId].join(':')}\r\n`);
          }
          return add.length ? { add } : undefined;
        },
      };
    },
  };
}
