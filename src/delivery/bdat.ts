/**
 * The message content with BDAT (RFC 3030 CHUNKING) instead of DATA: the body goes as it is
 * stored (CRLF lines, no dot-stuffing) in chunks of BDAT_CHUNK_BYTES, the last one marked
 * LAST. With PIPELINING (RFC 3030 4.2) the chunks are sent without waiting for each 250 and the
 * replies read as they come; without it each chunk waits for its reply.
 *
 * RFC 3030 2 and 4.2: a 4xx/5xx to a chunk fails the transaction; no more chunks are sent, the
 * replies of those already sent are read, and the failing reply decides. RFC 5321 3.8: a 421
 * anywhere ends the session. LMTP (RFC 2033 4.2): the replies to BDAT LAST are one per accepted
 * recipient and are read by the caller ('sent'); when a chunk failed, how many replies the LAST
 * chunk gets is not defined, so the session is closed. Owns: chunking and the BDAT replies; it
 * classifies nothing.
 */
import type { Readable } from 'node:stream';
import { crashPoint } from '../core/crashpoints.js';
import type { SmtpReply } from '../core/reply.js';
import type { BodyType } from '../core/envelope.js';
import { SmtpClientError } from './client-error.js';
import { createMimeDowngrade } from './mime-downgrade.js';
import type { SmtpClient } from './smtp-client.js';

/** Bytes per BDAT chunk (every chunk but the last, which carries LAST and may be shorter). */
export const BDAT_CHUNK_BYTES = 256 * 1024;

export interface BdatInput {
  readonly bodyType: BodyType;
  /** Opens the body (CRLF lines, not dot-stuffed). */
  openBody(): Readable;
  readonly commandTimeoutMs: number;
  readonly dataDoneTimeoutMs: number;
  /** Called once the LAST chunk is written in full (from then on the message may be delivered). */
  onAllSent(): void;
}

/**
 * The reply that decides the message: a failed chunk's ('data') or the reply to the LAST chunk
 * ('dot'); or, for LMTP, 'sent': LAST went out after every chunk was accepted, and the replies
 * (one per recipient) are still to be read.
 */
export type BdatResult =
  | { readonly reply: SmtpReply; readonly stage: 'data' | 'dot' }
  | { readonly stage: 'sent' };

const ok = (r: SmtpReply) => r.code >= 200 && r.code < 300;

/**
 * Sends the body of the open transaction with BDAT. A server without 8BITMIME gets the 8-bit
 * body downgraded (mime-downgrade.ts), as with DATA.
 * @throws SmtpClientError (connection trouble, a 421), MimeDowngradeError or the body's own
 *   error (the connection is then closed, so the server drops the partial message).
 */
export async function sendBdat(client: SmtpClient, b: BdatInput): Promise<BdatResult> {
  const pipelining = client.extensions.has('PIPELINING');
  let body: Readable = b.openBody();
  if (b.bodyType !== '7BIT' && !client.extensions.has('8BITMIME')) {
    const d = createMimeDowngrade();
    const src = body;
    src.once('error', (err) => d.destroy(err));
    body = src.pipe(d) as unknown as Readable;
  }
  let outstanding = 0;
  let failed: SmtpReply | undefined;
  const take = (r: SmtpReply): void => {
    outstanding--;
    if (r.code === 421) throw client.closedBy421('bdat', r);
    if (!ok(r)) failed ??= r;
  };
  let held: Buffer[] = [];
  let heldBytes = 0;
  const send = async (last: boolean): Promise<void> => {
    client.write(`BDAT ${heldBytes}${last ? ' LAST' : ''}\r\n`);
    for (const piece of held) await client.writeData(piece);
    held = [];
    heldBytes = 0;
    if (last) return;
    outstanding++;
    if (!pipelining) take(await client.readReply('bdat', b.commandTimeoutMs));
    else for (let r = client.takeReply(); r; r = outstanding > 0 ? client.takeReply() : undefined) take(r);
  };
  try {
    feed: for await (const chunk of body) {
      let buf = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as string, 'latin1');
      while (buf.length > 0) {
        if (heldBytes >= BDAT_CHUNK_BYTES) {
          await send(false);
          if (failed) break feed; // RFC 3030 2: no further chunks after a failed one
        }
        const take = Math.min(buf.length, BDAT_CHUNK_BYTES - heldBytes);
        held.push(buf.subarray(0, take)); // a view, no copy
        heldBytes += take;
        buf = buf.subarray(take);
      }
    }
  } catch (err) {
    if (!(err instanceof SmtpClientError)) client.destroy(new SmtpClientError('local', 'body', `message body failed: ${(err as Error).message}`, { cause: err }));
    throw err;
  }
  let lastSent = false;
  if (!failed) {
    await send(true);
    crashPoint('delivery-after-data');
    b.onAllSent();
    lastSent = true;
  }
  while (outstanding > 0) take(await client.readReply('bdat', b.commandTimeoutMs));
  if (lastSent && client.isLmtp) {
    if (!failed) return { stage: 'sent' };
    client.destroy(new SmtpClientError('lost', 'bdat', `closed the LMTP session with ${client.remoteMta} after a failed BDAT chunk`));
    return { reply: failed, stage: 'data' };
  }
  if (lastSent) {
    const final = await client.readReply('dot', b.dataDoneTimeoutMs);
    if (final.code === 421) throw client.closedBy421('dot', final);
    // A chunk failed after LAST went out (pipelined): the failure decides; the LAST reply only closes it.
    return failed ? { reply: failed, stage: 'data' } : { reply: final, stage: 'dot' };
  }
  return { reply: failed!, stage: 'data' };
}
