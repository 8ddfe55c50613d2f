/**
 * The maildir delivery agent (transport `maildir`, like Postfix's virtual(8) or local(8) with a
 * Maildir home): one file per recipient in the Maildir its route's template names
 * (local/maildir.ts mailboxPath), `Return-Path: <sender>` and `Delivered-To: <recipient>` on top
 * (and `X-Original-To:` when the recipient came from an alias), the body streamed from the queue
 * (never whole in memory), fsynced, renamed into new/, new/ fsynced. Returns one result per
 * recipient and never writes the store.
 *
 * Outcomes:
 * - delivered: 250 2.0.0 once the file is in new/ and new/ is on disk;
 * - mail loop: the message already carries `Delivered-To:` this recipient (as Postfix's local
 *   checks): bounced 554 5.4.6;
 * - quota (`local.maildir.quotaBytes`, 0 = none): the mailbox's new/ and cur/ plus this message
 *   over it: bounced 552 5.2.2;
 * - EDQUOT (the file system's quota): deferred 452 4.2.2; ENOSPC: deferred 452 4.3.1 (mail system
 *   full, RFC 3463);
 * - an address that cannot name a directory ("/" in the local part, "..": mailbox name errors):
 *   bounced 550 5.1.3;
 * - any other trouble (EACCES, ENOENT, EROFS, a body read error, shutdown): deferred 451 4.3.0
 *   with the reason.
 *
 * Delivery is at least once: a crash after the rename into new/ and before the scheduler's commit
 * of the outcome delivers the message again after the restart (a duplicate file), as with
 * Postfix's local delivery; no crash ever leaves a partial file in new/.
 */
import type { Readable } from 'node:stream';
import type { LocalMaildirConfig } from '../config/local-schema.js';
import type { Logger } from '../core/log.js';
import { notThisTransport } from '../delivery/transports.js';
import type { DeliveryAgent, DeliveryRecipient, DeliveryRequest, RecipientResult } from '../delivery/types.js';
import { aliasKey } from '../routing/aliases.js';
import { getHeaderFields, parseHeaderFields } from '../rfc5322/header.js';
import { MailboxNameError, mailboxPath, mailboxUsage, writeMaildir } from './maildir.js';

/** Largest header section read for the Delivered-To check, bytes (cleanup refuses longer ones). */
const HEADER_READ_LIMIT = 1024 * 1024 + 4;

/** Constructor options of MaildirAgent. */
export interface MaildirAgentOptions {
  /** `local.maildir`, read at each delivery (live reload). */
  readonly config: () => LocalMaildirConfig;
  readonly logger?: Logger;
}

/** The result of one recipient. */
function result(r: DeliveryRecipient, outcome: RecipientResult['outcome'], code: number, dsnStatus: string, text: string): RecipientResult {
  return { idx: r.idx, outcome, code, dsnStatus, diagnostic: `${code} ${dsnStatus} ${text}`.replace(/[\r\n]+/g, ' '), remote: false };
}

/**
 * The header section of a message stream (up to the empty line, at most HEADER_READ_LIMIT bytes),
 * then the stream is destroyed. @throws the stream's error.
 */
async function readHeaderSection(body: Readable): Promise<Buffer> {
  const parts: Buffer[] = [];
  let len = 0;
  try {
    for await (const chunk of body as AsyncIterable<Buffer>) {
      parts.push(chunk);
      len += chunk.length;
      const all = parts.length === 1 ? parts[0]! : Buffer.concat(parts, len);
      const end = all.indexOf('\r\n\r\n');
      if (end >= 0) return all.subarray(0, end + 2);
      if (len > HEADER_READ_LIMIT) return all;
      if (parts.length > 1) parts.splice(0, parts.length, all);
    }
    return parts.length === 1 ? parts[0]! : Buffer.concat(parts, len);
  } finally {
    body.destroy();
  }
}

/** The keys (aliasKey) of the addresses in the message's Delivered-To fields. */
function deliveredTo(header: Buffer): Set<string> {
  const out = new Set<string>();
  for (const f of getHeaderFields(parseHeaderFields(header), 'delivered-to')) {
    const v = f.value.replace(/\r\n/g, '').trim().replace(/^<(.*)>$/, '$1').trim();
    if (v) out.add(aliasKey(v));
  }
  return out;
}

/** The header fields prepended for one recipient (CRLF; the writer turns them to LF unless crlf). */
function prefixFor(mailFrom: string, r: DeliveryRecipient): Buffer {
  let s = `Return-Path: <${mailFrom}>\r\nDelivered-To: ${r.address}\r\n`;
  if (r.orcpt && aliasKey(r.orcpt.address) !== aliasKey(r.address)) s += `X-Original-To: ${r.orcpt.address}\r\n`;
  return Buffer.from(s, 'utf8');
}

/** Maps a failed write to the recipient's result (see the module comment). */
function failure(r: DeliveryRecipient, root: string, err: unknown): RecipientResult {
  const e = err as NodeJS.ErrnoException;
  if (err instanceof MailboxNameError) return result(r, 'bounced', 550, '5.1.3', err.message);
  if (e?.code === 'EDQUOT') return result(r, 'deferred', 452, '4.2.2', `<${r.address}>: mailbox full (disk quota of ${root})`);
  if (e?.code === 'ENOSPC') return result(r, 'deferred', 452, '4.3.1', `<${r.address}>: no space left for ${root}`);
  if (e?.name === 'AbortError' || e?.code === 'ABORT_ERR') return result(r, 'deferred', 451, '4.3.0', 'delivery aborted (shutdown)');
  return result(r, 'deferred', 451, '4.3.0', `cannot deliver to maildir ${root}: ${e?.code ? e.code + ' ' : ''}${e?.message ?? String(err)}`);
}

/** The agent of transport `maildir`. */
export class MaildirAgent implements DeliveryAgent {
  constructor(private readonly opts: MaildirAgentOptions) {}

  /**
   * Delivers one request: the recipients one after another, one file each. Never throws (see
   * DeliveryAgent): every failure is that recipient's deferred or bounced result.
   */
  async deliver(req: DeliveryRequest): Promise<RecipientResult[]> {
    const hop = req.nextHop;
    if (hop.kind !== 'maildir') return notThisTransport(req, 'maildir');
    const cfg = this.opts.config();
    let loops: Set<string>;
    try {
      loops = deliveredTo(await readHeaderSection(req.openBody()));
    } catch (err) {
      return req.recipients.map((r) => failure(r, hop.path, err));
    }
    const out: RecipientResult[] = [];
    for (const r of req.recipients) {
      if (req.signal?.aborted) {
        out.push(result(r, 'deferred', 451, '4.3.0', 'delivery aborted (shutdown)'));
        continue;
      }
      if (loops.has(aliasKey(r.address))) {
        out.push(result(r, 'bounced', 554, '5.4.6', `<${r.address}>: mail forwarding loop (the message already carries Delivered-To: ${r.address})`));
        continue;
      }
      let root = hop.path;
      try {
        root = mailboxPath(hop.path, r.address);
        const prefix = prefixFor(req.mailFrom, r);
        if (cfg.quotaBytes > 0) {
          const used = await mailboxUsage(root);
          const size = prefix.length + req.size;
          if (used + size > cfg.quotaBytes) {
            out.push(result(r, 'bounced', 552, '5.2.2', `<${r.address}>: mailbox full (${used} of ${cfg.quotaBytes} bytes used, the message is ${size})`));
            continue;
          }
        }
        const w = await writeMaildir({ root, prefix, body: req.openBody(), crlf: cfg.crlf, ...(req.signal ? { signal: req.signal } : {}) });
        this.opts.logger?.debug({ queueId: req.queueId, recipient: r.address, file: w.path, size: w.size }, 'delivered to maildir');
        out.push(result(r, 'delivered', 250, '2.0.0', 'delivered to maildir'));
      } catch (err) {
        const res = failure(r, root, err);
        this.opts.logger?.warn({ queueId: req.queueId, recipient: r.address, reply: res.diagnostic }, 'maildir delivery failed');
        out.push(res);
      }
    }
    return out;
  }

  /** Nothing to close (files are closed after each delivery). */
  async close(): Promise<void> {}
}
