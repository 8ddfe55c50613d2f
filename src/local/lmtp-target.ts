/**
 * LMTP targets as `local.routes` writes them (routing/types.ts LocalNextHop 'lmtp'): "host:port",
 * "[v6addr]:port" or "unix:/path/to/socket". RFC 2033 5: LMTP must not be offered on port 25, and
 * has no well-known TCP port of its own (24 is "any private mail system"), so a TCP target names
 * its port. Pure; no I/O.
 */

/** Where an LMTP session is opened: a TCP host and port, or a unix socket path. */
export type LmtpTarget =
  | { readonly kind: 'tcp'; readonly host: string; readonly port: number }
  | { readonly kind: 'unix'; readonly path: string };

/**
 * Parses a target. Host names are kept as written (node:net resolves them at connect); IPv6
 * addresses come without their brackets.
 * @returns undefined when `target` has none of the three forms or the port is not 1..65535.
 */
export function parseLmtpTarget(target: string): LmtpTarget | undefined {
  const t = target.trim();
  if (t.startsWith('unix:')) {
    const path = t.slice(5);
    return path.startsWith('/') && !/[\0\s]/.test(path) ? { kind: 'unix', path } : undefined;
  }
  const m = /^\[([0-9A-Fa-f:.]+)\]:(\d{1,5})$/.exec(t) ?? /^([^\s:[\]]+):(\d{1,5})$/.exec(t);
  if (!m) return undefined;
  const port = Number(m[2]);
  return port >= 1 && port <= 65535 ? { kind: 'tcp', host: m[1]!, port } : undefined;
}
