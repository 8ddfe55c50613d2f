/**
 * The shared corpus of real messages (../shared/corpus, or POSTLINE_CORPUS), prepared for SMTP:
 * mbox `From ` lines stripped (mbox files split into their messages), line endings made CRLF, and the
 * parameters each message needs (BODY=8BITMIME for 8-bit bytes, SMTPUTF8 for UTF-8 in the header).
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import assert from 'node:assert/strict';
import { join, relative, resolve } from 'node:path';
import { PROJECT_ROOT } from './postline-process.js';

export const CORPUS_DIR = resolve(PROJECT_ROOT, process.env.POSTLINE_CORPUS ?? join('..', 'shared', 'corpus'));

export interface CorpusMessage {
  /** Path relative to the corpus, with "#n" for the n-th message of an mbox file. */
  readonly name: string;
  /** CRLF message bytes, ready for DATA (before dot-stuffing). */
  readonly data: Buffer;
  readonly eightBit: boolean;
  readonly smtputf8: boolean;
}

/** True when the corpus folder exists. */
export function corpusAvailable(): boolean {
  return existsSync(join(CORPUS_DIR, 'MANIFEST.tsv'));
}

/** Converts CR, LF and CRLF line endings to CRLF. */
export function toCrlf(b: Buffer): Buffer {
  return Buffer.from(b.toString('latin1').replace(/\r\n|\r|\n/g, '\r\n'), 'latin1');
}

function headerSection(b: Buffer): Buffer {
  const i = b.indexOf('\r\n\r\n');
  return i < 0 ? b : b.subarray(0, i);
}

function isUtf8NonAscii(b: Buffer): boolean {
  if (!b.some((x) => x >= 0x80)) return false;
  try {
    new TextDecoder('utf-8', { fatal: true }).decode(b);
    return true;
  } catch {
    return false;
  }
}

function prepare(name: string, raw: Buffer): CorpusMessage {
  let data = toCrlf(raw);
  if (data.subarray(0, 5).toString('latin1') === 'From ') {
    const nl = data.indexOf('\r\n');
    data = nl < 0 ? Buffer.alloc(0) : data.subarray(nl + 2);
  }
  return { name, data, eightBit: data.some((x) => x >= 0x80), smtputf8: isUtf8NonAscii(headerSection(data)) };
}

/** Splits an mbox file at `From ` lines that start a message (after an empty line or at the start). */
function splitMbox(raw: Buffer): Buffer[] {
  const s = toCrlf(raw).toString('latin1');
  const starts: number[] = [];
  const re = /(^|\r\n\r\n)From [^\r\n]*\r\n/g;
  for (let m = re.exec(s); m; m = re.exec(s)) starts.push(m.index + m[1]!.length);
  if (starts.length === 0) return [Buffer.from(s, 'latin1')];
  return starts.map((st, i) => {
    let piece = s.slice(st, i + 1 < starts.length ? starts[i + 1] : s.length);
    if (i + 1 < starts.length) piece = piece.replace(/\r\n$/, ''); // the separator line before the next From
    return Buffer.from(piece, 'latin1');
  });
}

/** Every message of the corpus, sorted by path. */
export function loadCorpus(): CorpusMessage[] {
  const out: CorpusMessage[] = [];
  const walk = (dir: string) => {
    for (const n of readdirSync(dir).sort()) {
      const p = join(dir, n);
      const rel = relative(CORPUS_DIR, p);
      if (statSync(p).isDirectory()) {
        if (rel !== 'LICENSES') walk(p);
        continue;
      }
      if (!rel.includes('/')) continue; // MANIFEST.tsv, SOURCES.md
      const raw = readFileSync(p);
      if (rel.startsWith('mbox/')) splitMbox(raw).forEach((m, i) => out.push(prepare(`${rel}#${i + 1}`, m)));
      else out.push(prepare(rel, raw));
    }
  };
  walk(CORPUS_DIR);
  return out;
}

/**
 * Removes our Received header: the first field, up to the line that ends with its date. (Folding
 * can't be used to find its end: some corpus messages begin with a line that starts with a space.)
 */
export function stripFirstReceived(data: Buffer, eol: string): Buffer {
  const s = data.toString('latin1');
  assert.ok(s.startsWith('Received: from '), `expected our Received header first, got ${JSON.stringify(s.slice(0, 80))}`);
  const m = /; [A-Z][a-z]{2}, \d{1,2} [A-Z][a-z]{2} \d{4} \d\d:\d\d:\d\d [+-]\d{4}/.exec(s);
  assert.ok(m, 'our Received header ends with a date');
  const end = s.indexOf(eol, m.index);
  return Buffer.from(s.slice(end + eol.length), 'latin1');
}

/** The message as it must arrive with CRLF line endings: a last line without CRLF gets one (the DATA end needs it). */
export function expectedCrlf(m: CorpusMessage): Buffer {
  return m.data.subarray(-2).toString() === '\r\n' ? m.data : Buffer.concat([m.data, Buffer.from('\r\n')]);
}
