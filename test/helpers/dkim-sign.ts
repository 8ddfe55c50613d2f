/**
 * Test helper: an RFC 6376 relaxed/relaxed RSA-SHA256 signature built from Postline's own
 * canonicalization (src/dkim/canon.ts: WSP is SP and HTAB only), for messages the tests craft.
 */
import { sign, type KeyObject } from 'node:crypto';
import { RelaxedBodyHash, headerHashInput, pickSigned, splitFields } from '../../src/dkim/canon.js';

/** Signs `msg` (CRLF, with an empty line) over the fields `names`. @returns the message with its DKIM-Signature on top. */
export function signRelaxed(msg: Buffer, o: { key: KeyObject; domain: string; selector: string; names: readonly string[] }): Buffer {
  const end = msg.indexOf('\r\n\r\n');
  const bh = new RelaxedBodyHash();
  bh.update(msg.subarray(end + 4));
  const field = `DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=${o.domain}; s=${o.selector}; h=${o.names.join(':')}; bh=${bh.digest()}; b=`;
  const input = headerHashInput(pickSigned(splitFields(msg.subarray(0, end + 2)), o.names), field);
  return Buffer.concat([Buffer.from(`${field}${sign('sha256', input, o.key).toString('base64')}\r\n`, 'latin1'), msg]);
}
