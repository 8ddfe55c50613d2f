/**
 * Mail transactions over an open SmtpClient: MAIL, RCPT and DATA (one pipelined group when the
 * server offers PIPELINING), the body, or BDAT chunks (bdat.ts) when it offers CHUNKING.
 *
 * RFCs: RFC 5321 3.3 (mail transaction), 3.8 (a 421 ends the session), 4.5.3.1.10 (452 too many
 * recipients: send the rest in a later transaction), RFC 2920 3.1 (PIPELINING: DATA may be the last
 * command of the group; every reply is checked, and a 354 after no accepted RCPT is answered with a
 * lone "."), RFC 3030 (CHUNKING), RFC 1870 (SIZE; 5.3.4), RFC 6152 (8BITMIME, downgrade),
 * RFC 6531 (SMTPUTF8; 5.6.7), RFC 3461 (DSN parameters), RFC 2033 4.2 (LMTP: after the final "."
 * or BDAT LAST one reply per accepted recipient, in RCPT order). Owns: turning one message and its
 * recipients into per-recipient replies; it classifies nothing (trouble.ts does).
 */
import type { Readable } from 'node:stream';
import { crashPoint } from '../core/crashpoints.js';
import { reply, type SmtpReply } from '../core/reply.js';
import type { BodyType, DsnRet } from '../core/envelope.js';
import { DotStuffer } from '../rfc5321/dot-stuff.js';
import { SmtpClientError } from './client-error.js';
import { mailFromCommand, rcptToCommand, sizeLimit } from './mail-params.js';
import { sendBdat } from './bdat.js';
import { createMimeDowngrade, MimeDowngradeError } from './mime-downgrade.js';
import type { SmtpClient } from './smtp-client.js';
import type { DeliveryRecipient } from './types.js';

export interface MailTransaction {
  readonly mailFrom: string;
  readonly recipients: readonly DeliveryRecipient[];
  readonly bodyType: BodyType;
  /** The sender asked for SMTPUTF8: the parameter is sent when the server offers it. */
  readonly smtputf8: boolean;
  /** This transaction needs SMTPUTF8 (mail-params.ts smtputf8Required): 5.6.7 without it. */
  readonly smtputf8Required: boolean;
  readonly ret?: DsnRet;
  readonly envid?: string;
  /** Body size, bytes. */
  readonly size: number;
  /** Opens the body (CRLF lines, not dot-stuffed); called once per transaction sent. */
  openBody(): Readable;
  /** Use BDAT when the server offers CHUNKING (delivery.chunking). */
  readonly chunking?: boolean;
}

/** The reply that decides one recipient, and where it came from. */
export interface RecipientReply {
  readonly idx: number;
  readonly reply: SmtpReply;
  /** False for our own decisions (size, SMTPUTF8, downgrade failure). */
  readonly remote: boolean;
  /** Where the deciding reply was given. */
  readonly stage: 'mail' | 'rcpt' | 'data' | 'dot' | 'local';
}

export interface TransactionOutcome {
  /** Replies for the recipients decided so far (in any order). */
  readonly replies: RecipientReply[];
  /** Set when the connection failed (or a 421 ended it); recipients without a reply were not decided. */
  readonly error?: SmtpClientError;
  /**
   * With `error`: recipients whose message went out in full (end of data, or the LAST chunk)
   * without a final reply. The server may have taken it: they must not be sent again in this
   * attempt (the next attempt is the scheduler's), so nothing is sent twice on purpose.
   */
  readonly inDoubt?: readonly number[];
}

export interface TransactionTimeouts {
  /** Each MAIL/RCPT/DATA reply, ms. */
  readonly commandTimeoutMs: number;
  /** Reply to the final ".", ms. */
  readonly dataDoneTimeoutMs: number;
  /** Whole call (all transactions), ms. */
  readonly transactionTimeoutMs: number;
}

const ok = (r: SmtpReply) => r.code >= 200 && r.code < 300;
const each = (rs: readonly DeliveryRecipient[], r: SmtpReply, remote: boolean, stage: RecipientReply['stage']): RecipientReply[] =>
  rs.map((x) => ({ idx: x.idx, reply: r, remote, stage }));

/**
 * Local checks before MAIL: SIZE (RFC 1870) and SMTPUTF8 (RFC 6531 3.4). The agent moves on to the
 * next host before calling sendMail when SMTPUTF8 is required and not offered; this is the backstop.
 */
function precheck(client: SmtpClient, tx: MailTransaction): SmtpReply | undefined {
  const limit = sizeLimit(client.extensions);
  if (limit !== undefined && tx.size > limit) {
    return reply(552, '5.3.4', `message size ${tx.size} exceeds size limit ${limit} of server ${client.remoteMta}`);
  }
  if (tx.smtputf8Required && !client.extensions.has('SMTPUTF8')) {
    return reply(553, '5.6.7', `SMTPUTF8 is required, but was not offered by host ${client.remoteMta}`);
  }
  return undefined;
}

/**
 * Sends the message to all recipients over `client`, in as many transactions as the server's
 * "452 too many recipients" answers need (RFC 5321 4.5.3.1.10). Never throws: connection failures
 * (and a 421, after which the connection is closed) come back in `error`, with the replies
 * gathered before them and the recipients left in doubt.
 */
export async function sendMail(client: SmtpClient, tx: MailTransaction, t: TransactionTimeouts): Promise<TransactionOutcome> {
  const replies: RecipientReply[] = [];
  const local = precheck(client, tx);
  if (local) return { replies: each(tx.recipients, local, false, 'local') };
  const st: Progress = {};
  client.setDeadline(t.transactionTimeoutMs);
  try {
    let pending = tx.recipients;
    for (let round = 0; pending.length > 0 && round < tx.recipients.length; round++) {
      pending = await oneTransaction(client, tx, pending, t, replies, st);
    }
    return { replies };
  } catch (err) {
    if (err instanceof MimeDowngradeError) return { replies: replies.concat(each(pendingOf(tx, replies), err.reply, false, 'local')) };
    const e = err instanceof SmtpClientError ? err : new SmtpClientError('local', 'none', `local error: ${(err as Error).message}`, { cause: err });
    return { replies, error: e, ...(st.inDoubt ? { inDoubt: st.inDoubt.map((r) => r.idx) } : {}) };
  } finally {
    client.clearDeadline();
  }
}

/** Recipients whose whole message is on the wire and whose final reply has not come yet. */
interface Progress { inDoubt?: readonly DeliveryRecipient[] }

function pendingOf(tx: MailTransaction, replies: readonly RecipientReply[]): DeliveryRecipient[] {
  const done = new Set(replies.map((r) => r.idx));
  return tx.recipients.filter((r) => !done.has(r.idx));
}

/** One MAIL..DATA (or BDAT) round; returns the recipients to send in the next round (452 after an accept). */
async function oneTransaction(
  client: SmtpClient, tx: MailTransaction, rcpts: readonly DeliveryRecipient[], t: TransactionTimeouts, out: RecipientReply[], st: Progress,
): Promise<readonly DeliveryRecipient[]> {
  if (client.inTransaction && !(await client.reset())) {
    throw new SmtpClientError('lost', 'rset', `host ${client.remoteMta} did not accept RSET`);
  }
  const ext = client.extensions;
  const pipelining = ext.has('PIPELINING');
  const bdat = tx.chunking === true && ext.has('CHUNKING');
  const mail = mailFromCommand(tx, ext);
  const rcptCmds = rcpts.map((r) => rcptToCommand(r, ext));
  // RFC 2920 3.1: MAIL, the RCPTs and DATA go as one group, DATA last; replies are read in order.
  // BDAT carries data, so it waits for the RCPT replies (RFC 3030 4.2 lets it follow them).
  const dataInGroup = pipelining && !bdat;
  client.write(pipelining ? mail + rcptCmds.join('') + (dataInGroup ? 'DATA\r\n' : '') : mail);
  const mailReply = await client.expectReply('mail', t.commandTimeoutMs);
  client.inTransaction = true; // until the final reply: a later round starts with RSET
  if (!ok(mailReply)) {
    if (pipelining) {
      for (let i = 0; i < rcpts.length; i++) await client.expectReply('rcpt', t.commandTimeoutMs);
      if (dataInGroup) await endEmptyData(client, await client.expectReply('data', t.commandTimeoutMs), t);
    }
    out.push(...each(rcpts, mailReply, true, 'mail'));
    return [];
  }
  const accepted: DeliveryRecipient[] = [];
  const tooMany: RecipientReply[] = [];
  const tooManyRcpts: DeliveryRecipient[] = [];
  for (let i = 0; i < rcpts.length; i++) {
    if (!pipelining) client.write(rcptCmds[i]!);
    const r = await client.expectReply('rcpt', t.commandTimeoutMs);
    const rr: RecipientReply = { idx: rcpts[i]!.idx, reply: r, remote: true, stage: 'rcpt' };
    if (ok(r)) accepted.push(rcpts[i]!);
    else if (r.code === 452) { tooMany.push(rr); tooManyRcpts.push(rcpts[i]!); }
    else out.push(rr); // decided now, so a later 421 or lost connection keeps it
  }
  // 452 after at least one accept means "too many recipients for now": retry them in a new transaction.
  const later = accepted.length > 0 ? tooManyRcpts : [];
  if (accepted.length === 0) out.push(...tooMany);
  let dataReply: SmtpReply | undefined;
  if (dataInGroup) {
    dataReply = await client.expectReply('data', t.commandTimeoutMs);
    if (accepted.length === 0) {
      await endEmptyData(client, dataReply, t);
      return [];
    }
  }
  if (accepted.length === 0) return [];
  if (bdat) {
    const res = await sendBdat(client, { ...tx, ...t, onAllSent: () => { st.inDoubt = accepted; } });
    if (res.stage === 'sent') {
      await lmtpReplies(client, accepted, t, out, st);
      return later;
    }
    st.inDoubt = undefined;
    if (res.stage === 'dot') client.inTransaction = false;
    out.push(...each(accepted, res.reply, true, res.stage));
    return later;
  }
  dataReply ??= await client.command('DATA', 'data', t.commandTimeoutMs);
  if (dataReply.code === 421) throw client.closedBy421('data', dataReply);
  if (dataReply.code !== 354) {
    out.push(...each(accepted, dataReply, true, 'data'));
    return later;
  }
  await sendData(client, tx, accepted, t, out, st);
  return later;
}

/**
 * RFC 2920 3.1: DATA went in the group although no RCPT was accepted. A server that answered 354
 * anyway is sent a lone "." (an empty message with no recipient) and its reply is read.
 */
async function endEmptyData(client: SmtpClient, dataReply: SmtpReply, t: TransactionTimeouts): Promise<void> {
  if (dataReply.code !== 354) return;
  // LMTP (RFC 2033 4.2): DATA must fail without an accepted RCPT, and the "." would be answered
  // once per accepted recipient, i.e. never: the session is out of step, so it is closed.
  if (client.isLmtp) return client.destroy();
  client.write('.\r\n');
  await client.expectReply('dot', t.commandTimeoutMs);
}

async function sendData(client: SmtpClient, tx: MailTransaction, accepted: DeliveryRecipient[], t: TransactionTimeouts, out: RecipientReply[], st: Progress): Promise<void> {
  const downgrade = tx.bodyType !== '7BIT' && !client.extensions.has('8BITMIME');
  const stages: NodeJS.ReadWriteStream[] = downgrade ? [createMimeDowngrade(), new DotStuffer()] : [new DotStuffer()];
  // Plain pipe() with error forwarding (stream.pipeline costs an AbortController per message): an
  // error in any stage destroys the next one, and the last one's error reaches sendBody.
  let stuffed: Readable = tx.openBody();
  for (const stage of stages) {
    const prev = stuffed;
    prev.once('error', (err) => (stage as unknown as Readable).destroy(err));
    stuffed = prev.pipe(stage) as unknown as Readable;
  }
  await client.sendBody(stuffed);
  crashPoint('delivery-after-data');
  st.inDoubt = accepted;
  if (client.isLmtp) return lmtpReplies(client, accepted, t, out, st);
  const final = await client.readReply('dot', t.dataDoneTimeoutMs);
  st.inDoubt = undefined;
  if (final.code === 421) throw client.closedBy421('dot', final);
  client.inTransaction = false;
  out.push(...each(accepted, final, true, 'dot'));
}

/**
 * LMTP (RFC 2033 4.2): after the final "." (or BDAT LAST) one reply per accepted recipient, in the
 * order of the RCPT commands, each within `dataDoneTimeoutMs`. Each reply is recorded as it comes,
 * so a connection lost half way leaves only the recipients without a reply in doubt (the server
 * may have delivered to them: deferred now, a duplicate is possible on the next attempt). A 421
 * ends the session; it and the recipients after it stay in doubt.
 * @throws SmtpClientError (timeout, lost, a 421)
 */
async function lmtpReplies(client: SmtpClient, accepted: readonly DeliveryRecipient[], t: TransactionTimeouts, out: RecipientReply[], st: Progress): Promise<void> {
  for (let i = 0; i < accepted.length; i++) {
    st.inDoubt = accepted.slice(i);
    const r = await client.readReply('dot', t.dataDoneTimeoutMs);
    if (r.code === 421) throw client.closedBy421('dot', r);
    out.push({ idx: accepted[i]!.idx, reply: r, remote: true, stage: 'dot' });
  }
  st.inDoubt = undefined;
  client.inTransaction = false;
}
