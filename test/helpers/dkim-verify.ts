/**
 * Test helper: verifies DKIM signatures with two independent verifiers.
 *
 * - mailauth's dkimVerify, with a resolver that asks a real DNS server (dns-server.ts on loopback)
 *   through Postline's Resolver (node:dns with `servers`).
 * - dkimpy (Debian's python3-dkim, the library behind `dkimverify`), run by the interpreter named in
 *   `dkimverify`'s first line. `dkimverify` itself only asks the system resolver, so the script's
 *   `dnsfunc` answers from the TXT records the test looked up on the loopback DNS server.
 */
import { execFileSync, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import type { Resolver } from '../../src/dns/types.js';

import { dkimVerify } from 'mailauth/lib/dkim/verify.js';

/** One signature's outcome. */
export interface SigResult {
  readonly domain: string;
  readonly selector: string;
  readonly algorithm: string;
  readonly result: string;
  readonly comment?: string;
}

/** Verifies every signature of `msg` with mailauth; TXT lookups go to `resolver`. */
export async function verifyWithMailauth(msg: Buffer, resolver: Resolver): Promise<SigResult[]> {
  const out = await dkimVerify(msg, {
    resolver: async (name: string, rr: string): Promise<any> => {
      if (rr !== 'TXT') throw Object.assign(new Error(`no ${rr}`), { code: 'ENOTFOUND' });
      try {
        return await resolver.resolveTxt!(name);
      } catch (err) {
        throw Object.assign(new Error((err as Error).message), { code: 'ENOTFOUND' });
      }
    },
  });
  return (out.results as unknown as Array<Record<string, any>>).map((r) => ({
    domain: r.signingDomain, selector: r.selector, algorithm: r.algo, result: r.status?.result,
    ...(r.status?.comment ? { comment: r.status.comment } : {}),
  }));
}

/** The Python interpreter that runs `dkimverify` (python3-dkim), or undefined when it is not installed. */
export function dkimpyPython(): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (!dir) continue;
    try {
      const first = readFileSync(join(dir, 'dkimverify'), 'latin1').split('\n', 1)[0]!;
      if (!first.startsWith('#!')) continue;
      const interp = first.slice(2).trim().split(/\s+/);
      const python = interp[0]!.endsWith('env') ? interp[1]! : interp[0]!;
      execFileSync(python, ['-c', 'import dkim'], { stdio: 'ignore' });
      return python;
    } catch { /* not here */ }
  }
  return undefined;
}

const SCRIPT = `
import sys, json, base64, dkim
req = json.load(sys.stdin)
records = {k.lower().rstrip('.'): v for k, v in req['records'].items()}
def dnsfunc(name, timeout=5):
    n = name.decode('ascii') if isinstance(name, bytes) else name
    v = records.get(n.lower().rstrip('.'))
    return v.encode('ascii') if v is not None else None
out = []
for m in req['messages']:
    msg = base64.b64decode(m)
    try:
        d = dkim.DKIM(msg)
        d.headers
    except Exception as e:
        out.append({'error': str(e)[:200]})
        continue
    sigs = [v for (k, v) in d.headers if k.lower() == b'dkim-signature']
    res = []
    for i, raw in enumerate(sigs):
        try:
            ok = d.verify(idx=i, dnsfunc=dnsfunc)
        except Exception:
            ok = False
        try:
            tags = dkim.util.parse_tag_value(raw)
        except Exception:
            tags = {}
        res.append({'ok': bool(ok), 'd': tags.get(b'd', b'').decode(), 's': tags.get(b's', b'').decode(), 'a': tags.get(b'a', b'').decode()})
    out.append(res)
json.dump(out, sys.stdout)
`;

/** dkimpy's verdict on one signature. */
export interface DkimpySig { ok: boolean; d: string; s: string; a: string }

/**
 * Verifies every signature of each message with dkimpy. @param records TXT values by DNS name
 * (the strings of one record joined). @returns per message, per signature (top first) whether it
 * verified; `{ error }` when dkimpy cannot parse the message at all (a malformed header section).
 */
export async function verifyWithDkimpy(python: string, messages: readonly Buffer[], records: Record<string, string>): Promise<(DkimpySig[] | { error: string })[]> {
  const child = spawn(python, ['-c', SCRIPT], { stdio: ['pipe', 'pipe', 'pipe'] });
  const chunks: Buffer[] = [];
  const errs: Buffer[] = [];
  child.stdout.on('data', (c: Buffer) => chunks.push(c));
  child.stderr.on('data', (c: Buffer) => errs.push(c));
  child.stdin.end(JSON.stringify({ records, messages: messages.map((m) => m.toString('base64')) }));
  const timer = setTimeout(() => child.kill('SIGKILL'), 120_000);
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  clearTimeout(timer);
  if (code !== 0) throw new Error(`dkimpy failed (${code}): ${Buffer.concat(errs).toString('utf8').slice(-2000)}`);
  return JSON.parse(Buffer.concat(chunks).toString('utf8')) as (DkimpySig[] | { error: string })[];
}

const SIGN_SCRIPT = `
import sys, json, base64, dkim
req = json.load(sys.stdin)
key = req['key'].encode('ascii')
out = []
for i, m in enumerate(req['messages']):
    canon = req['canon'][i % len(req['canon'])].encode('ascii').split(b'/')
    try:
        sig = dkim.sign(base64.b64decode(m), req['selector'].encode('ascii'), req['domain'].encode('ascii'), key,
                        canonicalize=(canon[0], canon[1]), linesep=b'\\r\\n')
        out.append(base64.b64encode(sig).decode('ascii'))
    except Exception as e:
        out.append(None)
json.dump(out, sys.stdout)
`;

/**
 * Signs each message with dkimpy (an independent signer): RSA-SHA256 with `keyPem` (PKCS#1 or
 * PKCS#8 PEM) for d=`domain` s=`selector`, canonicalization taken in turn from `canon`
 * ("relaxed/relaxed", "simple/simple", ...), dkimpy's default header list. @returns the
 * DKIM-Signature field (with CRLF) to put on top of each message, or null where dkimpy refused it.
 */
export async function signWithDkimpy(python: string, messages: readonly Buffer[], o: { domain: string; selector: string; keyPem: string; canon: readonly string[] }): Promise<(Buffer | null)[]> {
  const child = spawn(python, ['-c', SIGN_SCRIPT], { stdio: ['pipe', 'pipe', 'pipe'] });
  const chunks: Buffer[] = [];
  const errs: Buffer[] = [];
  child.stdout.on('data', (c: Buffer) => chunks.push(c));
  child.stderr.on('data', (c: Buffer) => errs.push(c));
  child.stdin.end(JSON.stringify({ key: o.keyPem, domain: o.domain, selector: o.selector, canon: o.canon, messages: messages.map((m) => m.toString('base64')) }));
  const timer = setTimeout(() => child.kill('SIGKILL'), 120_000);
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  clearTimeout(timer);
  if (code !== 0) throw new Error(`dkimpy signing failed (${code}): ${Buffer.concat(errs).toString('utf8').slice(-2000)}`);
  return (JSON.parse(Buffer.concat(chunks).toString('utf8')) as (string | null)[]).map((s) => (s === null ? null : Buffer.from(s, 'base64')));
}
