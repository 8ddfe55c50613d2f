/**
 * The whole shared corpus through the feedback parsers (issue 10, sections 2 and 3): every file of
 * corpus/dsn, corpus/arf and corpus/autoreply; the bounce class of each DSN recipient compared
 * with the hand-written labels in test/fixtures/feedback/dsn-expected.json (read from each
 * message, not produced by the classifier). Prints FIGURE lines for the note.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { CORPUS_DIR } from '../../helpers/corpus.js';
import { PROJECT_ROOT } from '../../helpers/postline-process.js';
import { parseArf, parseBounce, type ArfReport, type BounceReport } from '../../../src/feedback/index.js';

interface Expected {
  readonly messages: Record<string, { readonly recipients: readonly { address: string; class: string | null; severity: string | null }[] }>;
  readonly knownMismatches: Record<string, string>;
}

const available = existsSync(join(CORPUS_DIR, 'dsn'));
if (!available) console.log(`corpus not found at ${CORPUS_DIR} (set POSTLINE_CORPUS): feedback corpus tests skipped`);
const skip = !available && 'corpus absent';

const files = (dir: string): string[] => readdirSync(join(CORPUS_DIR, dir)).filter((f) => statSync(join(CORPUS_DIR, dir, f)).isFile()).sort();

test('corpus/dsn: every file parsed; recipient, status and the hand-labelled class of each', { skip }, async () => {
  const expected = JSON.parse(readFileSync(join(PROJECT_ROOT, 'test', 'fixtures', 'feedback', 'dsn-expected.json'), 'utf8')) as Expected;
  const list = files('dsn');
  assert.deepEqual(list, Object.keys(expected.messages).sort(), 'the fixture has an entry for every corpus/dsn file');
  let parsed = 0, withRecipient = 0, withStatus = 0, labelled = 0, found = 0, classified = 0, match = 0, severityMatch = 0;
  const problems: string[] = [];
  for (const f of list) {
    let r: BounceReport;
    try {
      r = await parseBounce(readFileSync(join(CORPUS_DIR, 'dsn', f)));
    } catch (err) {
      problems.push(`${f}: threw ${String(err)}`);
      continue;
    }
    parsed++;
    assert.notEqual(r.kind, 'autoreply', `${f} is a bounce, not an auto-reply`);
    if (r.recipients.length) withRecipient++;
    if (r.recipients.some((x) => x.status)) withStatus++;
    const known = expected.knownMismatches[f];
    for (const want of expected.messages[f]!.recipients) {
      labelled++;
      const a = want.address.toLowerCase();
      const got = r.recipients.find((x) => x.address.toLowerCase() === a || x.originalRecipient?.toLowerCase() === a);
      if (!got) {
        if (!known) problems.push(`${f}: recipient ${want.address} not found (got ${r.recipients.map((x) => x.address).join(', ') || 'none'}, kind ${r.kind})`);
        continue;
      }
      found++;
      if (want.class === null) {
        assert.equal(got.class, undefined, `${f}: ${want.address} did not fail, so it has no class`);
        continue;
      }
      if (!got.class) continue;
      classified++;
      if (got.class === want.class) match++;
      else if (!known) problems.push(`${f}: ${want.address} classified ${got.class}, labelled ${want.class} (${got.diagnostic ?? ''})`);
      if (got.severity === want.severity) severityMatch++;
      else if (!known) problems.push(`${f}: ${want.address} severity ${got.severity}, labelled ${want.severity}`);
    }
  }
  const failing = Object.values(expected.messages).reduce((n, m) => n + m.recipients.filter((x) => x.class !== null).length, 0);
  console.log(`FIGURE dsn corpus: ${parsed} parsed, ${withRecipient} with recipient, ${withStatus} with status; `
    + `${labelled} hand-labelled recipients, ${found} found; ${classified} classified, ${match}/${classified} match hand labels `
    + `(${(100 * match / Math.max(1, classified)).toFixed(1)}%), severity ${severityMatch}/${classified}; `
    + `${failing - classified} labelled failures unclassified; known mismatches: ${Object.keys(expected.knownMismatches).length} files`);
  assert.deepEqual(problems, []);
  assert.equal(parsed, list.length);
});

/** Hand-read from each report: kind, Feedback-Type and the complained recipient. */
const ARF_EXPECTED: Record<string, [ArfReport['kind'], string | undefined, string | undefined]> = {
  'flanker--complaints_aol.eml': ['arf', 'abuse', 'redacted@aol.com'],
  'flanker--complaints_yahoo.eml': ['arf', 'abuse', 'user@yahoo.com'],
  'kumomta--rfc5965_1.eml': ['arf', 'abuse', undefined],
  'kumomta--rfc5965_2.eml': ['arf', 'abuse', 'user@example.com'],
  'kumomta--rfc5965_3.eml': ['arf', 'abuse', 'user@example.com'],
  'kumomta--rfc5965_4.eml': ['arf', 'abuse', 'cb4a01a48251d4765f489076aa81e2a4@comcast.net'],
  'mimekit--messages_feedback-report.eml': ['arf', 'abuse', 'user@example.com'],
  'postal-mime--arf.eml': ['arf', 'abuse', 'user@example.com'],
  'sisimai--bsd_arf-01.eml': ['arf', 'abuse', 'redacted@example.net'],
  'sisimai--bsd_arf-02.eml': ['arf', 'abuse', 'this-local-part-does-not-exist-on-yahoo@yahoo.com'],
  'sisimai--bsd_arf-11.eml': ['arf', 'abuse', undefined],
  'sisimai--bsd_arf-12.eml': ['arf', 'opt-out', 'user@example.com'],
  'sisimai--bsd_arf-14.eml': ['arf', 'abuse', 'kijitora@y.example.com'],
  'sisimai--bsd_arf-15.eml': ['arf', 'abuse', undefined],
  'sisimai--bsd_arf-16.eml': ['arf', 'abuse', 'kijitora@example.com'],
  'sisimai--bsd_arf-17.eml': ['arf', 'abuse', 'kijitora@example.com'],
  'sisimai--bsd_arf-18.eml': ['arf', 'auth-failure', 'kijitora@example.com'],
  'sisimai--bsd_arf-19.eml': ['arf', 'auth-failure', 'kijitora@example.org'],
  'sisimai--bsd_arf-20.eml': ['arf', 'auth-failure', 'kijitora@example.org'],
  'sisimai--bsd_arf-21.eml': ['arf', 'abuse', 'kijitora@example.org'],
  'sisimai--bsd_arf-22.eml': ['complaint', 'abuse', 'kijitora@example.com'],
  'sisimai--bsd_arf-23.eml': ['complaint', 'abuse', 'kijitora@example.com'],
  'sisimai--bsd_arf-24.eml': ['complaint', 'abuse', 'kijitora@example.com'],
  'sisimai--bsd_arf-25.eml': ['arf', 'abuse', 'hashed@example.com'],
  'sisimai--bsd_arf-26.eml': ['unknown', undefined, undefined], // a user's "unsubscribe" mail, no report
};

test('corpus/arf: every file parsed; kind, feedback type, complained recipient, provider', { skip }, async () => {
  const list = files('arf');
  let complaints = 0, withRecipient = 0, withProvider = 0, withOriginal = 0;
  for (const f of list) {
    const r = await parseArf(readFileSync(join(CORPUS_DIR, 'arf', f)));
    const want = ARF_EXPECTED[f];
    assert.ok(want, `expectation for ${f}`);
    assert.deepEqual([r.kind, r.feedbackType, r.recipient], want, f);
    if (r.kind !== 'unknown') complaints++;
    if (r.recipient) withRecipient++;
    if (r.provider) withProvider++;
    if (r.original) withOriginal++;
    // A complaint is not a bounce.
    const b = await parseBounce(readFileSync(join(CORPUS_DIR, 'arf', f)));
    assert.ok(b.kind === 'unknown' || b.kind === 'autoreply', `${f} is not a bounce (${b.kind})`);
  }
  assert.equal((await parseArf(readFileSync(join(CORPUS_DIR, 'arf', 'flanker--complaints_aol.eml')))).redacted, true);
  assert.equal((await parseArf(readFileSync(join(CORPUS_DIR, 'arf', 'flanker--complaints_yahoo.eml')))).provider, 'yahoo');
  assert.equal((await parseArf(readFileSync(join(CORPUS_DIR, 'arf', 'sisimai--bsd_arf-16.eml')))).originalRcptTo.length, 7);
  console.log(`FIGURE arf corpus: ${list.length} parsed, ${complaints} complaints, ${withRecipient} with recipient, ${withProvider} with provider, ${withOriginal} with the original's headers`);
});

test('corpus/autoreply: every file is an auto-reply, never a bounce or a complaint', { skip }, async () => {
  const list = files('autoreply');
  for (const f of list) {
    const raw = readFileSync(join(CORPUS_DIR, 'autoreply', f));
    const r = await parseBounce(raw);
    assert.equal(r.kind, 'autoreply', f);
    assert.deepEqual(r.recipients, []);
    assert.equal((await parseArf(raw)).kind, 'unknown', f);
  }
  console.log(`FIGURE autoreply corpus: ${list.length} parsed, ${list.length} recognised as auto-replies`);
});

test('the rest of the corpus: no ordinary message is taken for a bounce or a complaint', { skip }, async () => {
  let n = 0;
  for (const dir of readdirSync(CORPUS_DIR)) {
    if (['dsn', 'arf', 'autoreply'].includes(dir) || !statSync(join(CORPUS_DIR, dir)).isDirectory()) continue;
    for (const f of files(dir)) {
      // sisimai's files are bounces and reports in other line-end and mbox forms.
      if (f.startsWith('sisimai--')) continue;
      const raw = readFileSync(join(CORPUS_DIR, dir, f));
      const r = await parseBounce(raw);
      assert.ok(r.kind === 'unknown' || r.kind === 'autoreply', `${dir}/${f}: ${r.kind} ${r.recipients.map((x) => x.address).join(',')}`);
      assert.equal((await parseArf(raw)).kind, 'unknown', `${dir}/${f}`);
      n++;
    }
  }
  assert.ok(n > 100);
});
