/**
 * Mail transactions over an open SmtpClient: MAIL, RCPT (pipelined when offered), DATA and the body.
 *
 * RFCs: RFC 5321 3.3 (mail transaction), 4.5.3.1.10 (452 too many recipients: send the rest in a
 * later transaction), RFC 2920 (PIPELINING), RFC 1870 (SIZE; 5.3.4), RFC 6152 (8BITMIME, downgrade),
 * RFC 6531 (SMTPUTF8; 5.6.7), RFC 3461 (DSN parameters). Owns: turning one message and its
 * recipients into per-recipient replies; it classifies nothing (trouble.ts does).
 */
import type { Readable } from 'node:stream';
import { crashPoint } from '../core/crashpoints.js';
import { reply, type SmtpReply } from '../core/reply.js';
import type { BodyType, DsnRet } from '../core/envelope.js';
import { DotStuffer } from '../rfc5321/dot-stuff.js';
import { SmtpClientError } from './client-error.js';
import { mailFromCommand, rcptToCommand, sizeLimit } from './mail-params.js';
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
  /** Set when the connection failed; recipients without a reply were not decided. */
  readonly error?: SmtpClientError;
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
 * come back in `error`, with the replies gathered before them.
 */
export async function sendMail(client: SmtpClient, tx: MailTransaction, t: TransactionTimeouts): Promise<TransactionOutcome> {
  const replies: RecipientReply[] = [];
  const local = precheck(client, tx);
  if (local) return { replies: each(tx.recipients, local, false, 'local') };
  client.setDeadline(t.transactionTimeoutMs);
  try {
    let pending = tx.recipients;
    for (let round = 0; pending.length > 0 && round < tx.recipients.length; round++) {
      pending = await oneTransaction(client, tx, pending, t, replies);
    }
    return { replies };
  } catch (err) {
    if (err instanceof MimeDowngradeError) return { replies: replies.concat(each(pendingOf(tx, replies), err.reply, false, 'local')) };
    const e = err instanceof SmtpClientError ? err : new SmtpClientError('local', 'none', `local error: ${(err as Error).message}`, { cause: err });
    return { replies, error: e };
  } finally {
    client.clearDeadline();
  }
}

function pendingOf(tx: MailTransaction, replies: readonly RecipientReply[]): DeliveryRecipient[] {
  const done = new Set(replies.map((r) => r.idx));
  return tx.recipients.filter((r) => !done.has(r.idx));
}

/** One MAIL..DATA round; returns the recipients to send in the next round (452 after an accept). */
async function oneTransaction(
  client: SmtpClient, tx: MailTransaction, rcpts: readonly DeliveryRecipient[], t: TransactionTimeouts, out: RecipientReply[],
): Promise<readonly DeliveryRecipient[]> {
  if (client.inTransaction && !(await client.reset())) {
    throw new SmtpClientError('lost', 'rset', `host ${client.remoteMta} did not accept RSET`);
  }
  const ext = client.extensions;
  const mail = mailFromCommand(tx, ext);
  const rcptCmds = rcpts.map((r) => rcptToCommand(r, ext));
  const pipelining = ext.has('PIPELINING');
  // RFC 2920 3.1: MAIL and RCPT may be sent as one group; replies are read in order.
  client.write(pipelining ? mail + rcptCmds.join('') : mail);
  const mailReply = await client.readReply('mail', t.commandTimeoutMs);
  client.inTransaction = ok(mailReply);
  if (!ok(mailReply)) {
    if (pipelining) for (let i = 0; i < rcpts.length; i++) await client.readReply('rcpt', t.commandTimeoutMs);
    client.inTransaction = true; // make the next round RSET
    out.push(...each(rcpts, mailReply, true, 'mail'));
    return [];
  }
  const accepted: DeliveryRecipient[] = [];
  const tooMany: DeliveryRecipient[] = [];
  const rejected: RecipientReply[] = [];
  for (let i = 0; i < rcpts.length; i++) {
    if (!pipelining) client.write(rcptCmds[i]!);
    const r = await client.readReply('rcpt', t.commandTimeoutMs);
    if (ok(r)) accepted.push(rcpts[i]!);
    else if (r.code === 452) { tooMany.push(rcpts[i]!); rejected.push({ idx: rcpts[i]!.idx, reply: r, remote: true, stage: 'rcpt' }); }
    else rejected.push({ idx: rcpts[i]!.idx, reply: r, remote: true, stage: 'rcpt' });
  }
  // 452 after at least one accept means "too many recipients for now": retry them in a new transaction.
  const later = accepted.length > 0 ? tooMany : [];
  const laterSet = new Set(later.map((r) => r.idx));
  out.push(...rejected.filter((r) => !laterSet.has(r.idx)));
  if (accepted.length === 0) return [];
  await sendData(client, tx, accepted, t, out);
  return later;
}

async function sendData(client: SmtpClient, tx: MailTransaction, accepted: DeliveryRecipient[], t: TransactionTimeouts, out: RecipientReply[]): Promise<void> {
  const dataReply = await client.command('DATA', 'data', t.commandTimeoutMs);
  if (dataReply.code !== 354) {
    out.push(...each(accepted, dataReply, true, 'data'));
    return;
  }
  const downgrade = tx.bodyType !== '7BIT' && !client.extensions.has('8BITMIME');
  const stages: NodeJS.ReadWriteStream[] = downgrade ? [createMimeDowngrade(), new DotStuffer()] : [new DotStuffer()];
  // An error anywhere (body read, downgrade) destroys the last stage, which sendBody turns into an abort.
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
  const final = await client.readReply('dot', t.dataDoneTimeoutMs);
  client.inTransaction = false;
  out.push(...each(accepted, final, true, 'dot'));
}
