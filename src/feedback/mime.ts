/**
 * Splitting a report into its MIME parts (RFC 2045, RFC 2046) with mailsplit, in bounded memory:
 * at most `maxParts` parts, `maxPartBytes` kept of each, `maxHeaderBytes` of header per part.
 * Enclosed messages (message/rfc822) are kept whole as one part (their header section is read
 * by original.ts), so the parts of the original never mix with the report's.
 */
import { createRequire } from 'node:module';
import { Writable } from 'node:stream';
import { bytesToText, headerFields, type Field } from './text.js';
import type { FeedbackLimits } from './types.js';

const require = createRequire(import.meta.url);

/** The parts of mailsplit's MimeNode we read (the package ships no types). */
interface MailsplitNode {
  readonly type: 'node';
  readonly parentNode: MailsplitNode | false;
  readonly contentType: string | false;
  readonly charset: string | false;
  readonly encoding: string | false;
  readonly disposition: string | false;
  readonly multipart: string | false;
  getHeaders(): Buffer;
}
interface MailsplitChunk {
  readonly type: 'body' | 'data';
  readonly node: MailsplitNode;
  readonly value: Buffer;
}
interface MailsplitModule {
  Splitter: new (options: object) => NodeJS.ReadWriteStream;
}
const mailsplit = require('mailsplit') as MailsplitModule;

/** One MIME part of the report. */
export interface MimePart {
  /** 0 for the top-level entity, then in the order of the message. */
  readonly index: number;
  /** Nesting depth (0: top level). */
  readonly depth: number;
  /** Lower case; "text/plain" when absent (RFC 2045 5.2). */
  readonly contentType: string;
  readonly charset?: string;
  /** Content-Transfer-Encoding, lower case ('' for none). */
  readonly encoding: string;
  /** The report-type parameter of a multipart/report (RFC 6522 3), lower case. */
  readonly reportType?: string;
  readonly multipart: boolean;
  /** The part's header fields (names lower case). */
  readonly header: readonly Field[];
  /** Body bytes as transfer-encoded, at most maxPartBytes; for a multipart, its preamble, boundaries and epilogue. */
  readonly body: Buffer;
  /** Body longer than maxPartBytes: the rest was dropped. */
  readonly truncated: boolean;
}

/** splitMessage's answer. */
export interface SplitMessage {
  /** The parts in order; parts[0] is the top-level entity (always present). */
  readonly parts: readonly MimePart[];
  /** Why the split stopped early (a mailsplit limit or a malformed structure), if it did. */
  readonly error?: string;
}

interface Building {
  index: number;
  depth: number;
  node: MailsplitNode;
  chunks: Buffer[];
  size: number;
  truncated: boolean;
}

/**
 * Splits `raw` into parts (bare CR line ends, as in old Mac files, read as LF). Never rejects: a structure mailsplit gives up on ends the list there,
 * with `error` set.
 * @param raw the message, already cut to maxMessageBytes by the caller.
 */
export async function splitMessage(raw: Buffer, limits: FeedbackLimits): Promise<SplitMessage> {
  const building: Building[] = [];
  const byNode = new Map<MailsplitNode, Building>();
  let error: string | undefined;
  try {
    const splitter = new mailsplit.Splitter({
      ignoreEmbedded: true, maxHeadSize: limits.maxHeaderBytes, maxChildNodes: limits.maxParts,
    });
    const sink = new Writable({
      objectMode: true,
      write(d: MailsplitNode | MailsplitChunk, _enc, cb): void {
        if (d.type === 'node') {
          if (building.length < limits.maxParts) {
            let depth = 0;
            for (let p = d.parentNode; p; p = p.parentNode) depth++;
            const b: Building = { index: building.length, depth, node: d, chunks: [], size: 0, truncated: false };
            building.push(b);
            byNode.set(d, b);
          }
        } else if (d.type === 'body' || d.type === 'data') {
          const b = byNode.get(d.node);
          if (b && d.value?.length) {
            const room = limits.maxPartBytes - b.size;
            if (room <= 0) b.truncated = true;
            else {
              const v = d.value.length > room ? d.value.subarray(0, room) : d.value;
              if (v.length < d.value.length) b.truncated = true;
              b.chunks.push(Buffer.from(v));
              b.size += v.length;
            }
          }
        }
        cb();
      },
    });
    await new Promise<void>((resolve) => {
      const fail = (err: unknown): void => {
        error ??= err instanceof Error ? err.message : String(err);
        resolve();
      };
      splitter.once('error', fail);
      sink.once('error', fail);
      sink.once('finish', () => resolve());
      splitter.pipe(sink);
      splitter.end(lineEnds(raw));
    });
  } catch (err) {
    error ??= err instanceof Error ? err.message : String(err);
  }
  const parts = building.map(toPart);
  if (!parts.length) parts.push(fallbackPart(raw, limits));
  return { parts, ...(error !== undefined ? { error } : {}) };
}

/** A message with bare CR line ends (old Mac files) gets LF ones; mailsplit splits lines at LF. */
function lineEnds(buf: Buffer): Buffer {
  const head = buf.subarray(0, 8192);
  if (head.includes(0x0a) || !head.includes(0x0d)) return buf;
  const out = Buffer.from(buf);
  for (let i = 0; i < out.length; i++) if (out[i] === 0x0d) out[i] = 0x0a;
  return out;
}

function toPart(b: Building): MimePart {
  const n = b.node;
  let header: Field[] = [];
  try {
    header = headerFields(bytesToText(n.getHeaders()));
  } catch { /* a header mailsplit could not build: none */ }
  const ct = header.find((f) => f.name === 'content-type')?.value ?? '';
  const reportType = /report-type\s*=\s*"?([A-Za-z0-9._\-]+)/i.exec(ct)?.[1]?.toLowerCase();
  return {
    index: b.index,
    depth: b.depth,
    contentType: /^[a-z0-9!#$&^_.+\-]+\/[a-z0-9!#$&^_.+\-]+/.exec((n.contentType || '').toLowerCase())?.[0] ?? 'text/plain',
    ...(n.charset ? { charset: String(n.charset).toLowerCase() } : {}),
    encoding: (n.encoding || '').toLowerCase(),
    ...(reportType ? { reportType } : {}),
    multipart: !!n.multipart,
    header,
    body: b.chunks.length === 1 ? b.chunks[0]! : Buffer.concat(b.chunks),
    truncated: b.truncated,
  };
}

/** When mailsplit produced nothing at all: the whole message as one text part. */
function fallbackPart(raw: Buffer, limits: FeedbackLimits): MimePart {
  const text = bytesToText(raw.subarray(0, limits.maxPartBytes + limits.maxHeaderBytes));
  const sep = /\r?\n\r?\n/.exec(text);
  const head = sep ? text.slice(0, sep.index) : text;
  return {
    index: 0, depth: 0, contentType: 'text/plain', encoding: '', multipart: false,
    header: headerFields(head),
    body: Buffer.from(sep ? text.slice(sep.index + sep[0].length) : '', 'utf8'),
    truncated: raw.length > limits.maxPartBytes,
  };
}
