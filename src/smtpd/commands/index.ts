/**
 * The verb dispatch table of the SMTP server (RFC 5321 4.1 and extensions). One handler per verb;
 * a verb not in the table gets 500 5.5.1.
 */
import type { SessionContext } from '../context.js';
import { auth } from './auth.js';
import { bdat } from './bdat.js';
import { expn, help, noop, quit, rset, vrfy } from './basic.js';
import { data } from './data.js';
import { ehlo, helo } from './helo.js';
import { mail } from './mail.js';
import { rcpt } from './rcpt.js';
import { starttls } from './starttls.js';
import { xclient } from './xclient.js';
import { xforward } from './xforward.js';

/** A command handler: gets the session and the argument text (after the verb and one space). */
export type CommandHandler = (ctx: SessionContext, arg: string) => void | Promise<void>;

/** Verb (upper case) -> handler. */
export const COMMANDS: Readonly<Record<string, CommandHandler>> = Object.freeze({
  EHLO: ehlo,
  HELO: helo,
  MAIL: mail,
  RCPT: rcpt,
  DATA: data,
  BDAT: bdat,
  RSET: rset,
  NOOP: noop,
  QUIT: quit,
  VRFY: vrfy,
  EXPN: expn,
  HELP: help,
  STARTTLS: starttls,
  AUTH: auth,
  XCLIENT: xclient,
  XFORWARD: xforward,
});
