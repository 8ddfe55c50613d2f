/**
 * Virtual aliases (`local.aliases`, like Postfix's virtual_alias_maps): one address to one or more
 * addresses, in any domain. The configuration check refuses a cycle at load, naming it
 * (config/local-schema.ts); policy accepts alias addresses at RCPT; cleanup expands them when a
 * message is accepted, so the queue holds the final mailboxes and each gets its own delivery, DSN
 * and events. Pure; no I/O.
 *
 * - Addresses compare as Postfix's lookup tables compare them: the local part unquoted (RFC 5321
 *   4.1.2, `"bob"@x` is `bob@x`) and in lower case, the domain as a lower-case A-label (RFC 5890).
 * - ORCPT (RFC 3461 4.2): an expanded recipient keeps the original's ORCPT, or, when the client
 *   gave none, gets the address the client gave (`rfc822;sales@example.test`, `utf-8;` for a UTF-8
 *   address, RFC 6533), so a DSN about it names the address the sender used. NOTIFY is kept.
 * - Nested aliases expand in turn, at most `limits.depth` deep; an alias that lists itself keeps
 *   its own mailbox ("user: [user, other]", Postfix's "user: user, other"): that edge is no cycle.
 * - A cycle (refused at load, so only possible through a bug) or an expansion past the limits
 *   refuses the recipient (RCPT) or the message (cleanup): 554 5.4.6, as a mail loop.
 * - Duplicates are removed afterwards by cleanup/recipients.ts (same address, NOTIFY and ORCPT):
 *   targets reached twice from the same original are one recipient.
 */
import { isAscii } from 'node:buffer';
import type { AliasLimits } from '../config/local-schema.js';
import { splitAddress, toALabel, type Recipient } from '../core/envelope.js';
import { PostlineError } from '../core/errors.js';
import { reply } from '../core/reply.js';
import { mailboxOf } from '../rfc5321/address.js';

/** The comparison key of an address: unquoted local part and A-label domain, lower case. */
export function aliasKey(address: string): string {
  const { local, domain } = splitAddress(mailboxOf(address.trim()));
  const d = domain.replace(/\.$/, '');
  return `${local.toLowerCase()}@${toALabel(d) || d.toLowerCase()}`;
}

/** `local.aliases` as written: a map, or a list of { address, to } entries. */
export type AliasInput = Readonly<Record<string, readonly string[]>> | readonly { readonly address: string; readonly to: readonly string[] }[];

/** The alias table by key: each alias's targets as written (order kept). */
export type AliasMap = ReadonlyMap<string, readonly string[]>;

/**
 * Builds the table from either form.
 * @returns the table, and the addresses given twice (same key) for the caller to report.
 */
export function aliasMap(input: AliasInput): { map: Map<string, readonly string[]>; duplicates: string[] } {
  const entries: [string, readonly string[]][] = Array.isArray(input)
    ? (input as readonly { address: string; to: readonly string[] }[]).map((e) => [e.address, e.to])
    : Object.entries(input as Record<string, readonly string[]>);
  const map = new Map<string, readonly string[]>();
  const duplicates: string[] = [];
  for (const [address, to] of entries) {
    const k = aliasKey(address);
    if (map.has(k)) duplicates.push(address);
    else map.set(k, to);
  }
  return { map, duplicates };
}

/**
 * A cycle in the alias graph (a -> b -> ... -> a, through two or more aliases; an alias listing
 * itself is not one), as the list of its addresses from the first to the one that closes it
 * (["a@x", "b@x", "a@x"]), or undefined when the graph has none. Iterative depth-first search:
 * O(aliases + targets), no recursion (a long chain cannot overflow the stack).
 */
export function findAliasCycle(map: AliasMap): string[] | undefined {
  const state = new Map<string, 1 | 2>(); // 1: on the current path, 2: done
  for (const start of map.keys()) {
    if (state.has(start)) continue;
    const path: string[] = [start];
    const next: number[] = [0];
    state.set(start, 1);
    while (path.length) {
      const node = path[path.length - 1]!;
      const targets = map.get(node) ?? [];
      const i = next[next.length - 1]!;
      if (i >= targets.length) {
        state.set(node, 2);
        path.pop();
        next.pop();
        continue;
      }
      next[next.length - 1] = i + 1;
      const t = aliasKey(targets[i]!);
      if (t === node || !map.has(t)) continue; // itself (keeps the mailbox), or a mailbox
      const s = state.get(t);
      if (s === 1) return [...path.slice(path.indexOf(t)), t];
      if (s === 2) continue;
      state.set(t, 1);
      path.push(t);
      next.push(0);
    }
  }
  return undefined;
}

/** What cleanup asks about local recipients (main.ts builds it from `local.*`; rebuilt on reload). */
export interface LocalRecipientRules {
  /** The alias table by key (config/local-aliases.ts aliasKey). */
  readonly aliases: AliasMap;
  readonly limits: AliasLimits;
  /** True when the local route of `address` holds its mail (mode hold): the message is committed held. */
  holds(address: string): boolean;
}

/** The refusal of an alias expansion that loops or grows past the limits (554 5.4.6). */
export class AliasLoopError extends PostlineError {
  constructor(message: string) {
    super('ERR_ALIAS_LOOP', message, { temporary: false, reply: reply(554, '5.4.6', `Alias expansion loop or limit: ${message.slice(0, 200)}`) });
    this.name = 'AliasLoopError';
  }
}

/** The ORCPT an expanded recipient carries: the original's, else the address the client gave. */
function orcptOf(r: Recipient): NonNullable<Recipient['orcpt']> {
  return r.orcpt ?? { addrType: isAscii(Buffer.from(r.address, 'utf8')) ? 'rfc822' : 'utf-8', address: r.address };
}

/**
 * Expands the aliases among `recipients` (see above), keeping their order (an alias's targets in
 * its place, in the order configured). @returns the same array when no recipient is an alias.
 * @throws AliasLoopError (554 5.4.6) for a cycle, more than `limits.depth` nested aliases, or more
 *         than `limits.recipients` addresses from one recipient.
 */
export function expandAliases(recipients: readonly Recipient[], aliases: AliasMap, limits: AliasLimits): readonly Recipient[] {
  if (aliases.size === 0 || !recipients.some((r) => aliases.has(aliasKey(r.address)))) return recipients;
  const out: Recipient[] = [];
  for (const r of recipients) {
    const top = aliasKey(r.address);
    const targets = aliases.get(top);
    if (!targets) {
      out.push(r);
      continue;
    }
    let count = 0;
    const leaf = (address: string, self: boolean): void => {
      if (++count > limits.recipients) throw new AliasLoopError(`${r.address} expands to more than ${limits.recipients} addresses`);
      // The alias keeping its own mailbox at the top is the recipient the client gave, unchanged.
      if (self && aliasKey(address) === top) out.push(r);
      else out.push({ address, ...(r.notify ? { notify: r.notify } : {}), orcpt: orcptOf(r) });
    };
    // Depth-first with an explicit stack; `path` holds the aliases above the one being expanded.
    const path: string[] = [top];
    const stack: { key: string; list: readonly string[]; i: number }[] = [{ key: top, list: targets, i: 0 }];
    while (stack.length) {
      const f = stack[stack.length - 1]!;
      if (f.i >= f.list.length) {
        stack.pop();
        path.pop();
        continue;
      }
      const t = f.list[f.i++]!;
      const k = aliasKey(t);
      const sub = k === f.key ? undefined : aliases.get(k);
      if (!sub) {
        leaf(t, k === f.key);
        continue;
      }
      if (path.includes(k)) throw new AliasLoopError(`alias loop ${[...path, k].join(' -> ')}`);
      if (path.length >= limits.depth) throw new AliasLoopError(`${r.address}: aliases nested more than ${limits.depth} deep`);
      path.push(k);
      stack.push({ key: k, list: sub, i: 0 });
    }
  }
  return out;
}
