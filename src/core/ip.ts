/**
 * Client address normalisation shared by smtpd and policy: one rule, applied once per connection.
 */

/** Strips the IPv4-mapped prefix: "::ffff:10.0.0.1" -> "10.0.0.1" (IPv4 clients on dual-stack sockets count as IPv4). */
export function normalizeAddress(address: string): string {
  const m = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  return m ? m[1]! : address;
}
