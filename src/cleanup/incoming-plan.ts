/** What cleanup hands CleanupMessage (incoming.ts) before the first byte, and what it gets back for the commit. Kept apart by size only. */
import type { BodyType } from '../core/envelope.js';
import type { MessageMeta } from '../core/session.js';
import type { AuthOutcome } from '../events/record.js';
import type { BodyWriter } from '../spool/types.js';
import type { MetaLimits } from './meta.js';
import type { ModifierChain } from './modifiers.js';

/** What cleanup decided for this message before the first byte. */
export interface IncomingPlan {
  /** The Received field with its CRLF. */
  readonly received: string;
  /** Add a missing Date / Message-ID (authenticated submission only). */
  readonly addMissingFields: boolean;
  readonly hostname: string;
  /** More Received fields than this fails the message (554 5.4.6). */
  readonly maxReceived: number;
  /** Largest message from the client, bytes (552 5.3.4). */
  readonly maxSize: number;
  /** ms since epoch, for an added Date. */
  readonly now: () => number;
  /**
   * The sender asked for SMTPUTF8 (RFC 6531): then the buffered header section is checked for
   * non-ASCII bytes (one native scan), so delivery knows whether a hop needs SMTPUTF8.
   */
  readonly smtputf8?: boolean;
  /**
   * Read X-Postline-Tags / X-Postline-Metadata (authenticated or trusted clients) with these
   * bounds; absent: they are not read. Those fields are removed from every message either way.
   */
  readonly readMeta?: MetaLimits;
  /** The envelope's BODY= type (a 7-bit conversion applies only when it is not 7BIT). */
  readonly bodyType?: BodyType;
  /** The message's modifiers (default: none). */
  readonly chain?: ModifierChain;
  /** A fresh chain for the same message (after a failed 7-bit conversion). Default: none, the message is refused. */
  readonly rechain?: () => ModifierChain;
  /** A fresh body writer for the same queue ID (after a failed 7-bit conversion). */
  readonly reopen?: () => Promise<BodyWriter>;
  /** Commits `body` (the writer in use); resolves with the queue ID. */
  readonly commit: (facts: CommitFacts, body: BodyWriter) => Promise<string>;
}

/** What CleanupMessage found out about the message, for its commit. */
export interface CommitFacts {
  /** The Message-ID found or added. */
  readonly messageId: string | undefined;
  /** Whether the header section holds non-ASCII bytes (undefined: not checked, the message is not SMTPUTF8). */
  readonly utf8Headers: boolean | undefined;
  /** What the X-Postline-* fields gave. */
  readonly meta: MessageMeta | undefined;
  /** Header fields from the chain's end (each with CRLF), '' when none: stored with the row, given out before the body. */
  readonly prepend: string;
  /** True when the stored form was converted to 7-bit: commit it as BODY=7BIT. */
  readonly sevenBit: boolean;
  /** Inbound verification results from the chain (mx listeners), for the message.received event. */
  readonly auth?: AuthOutcome;
}

