/**
 * Local user and group names from the system files (/etc/passwd, /etc/group: passwd(5), group(5)).
 * Node has no getpwuid(3) for another uid and no getgrnam(3), so the maildrop pickup reads the
 * files itself: a uid without an entry (NSS-only users: LDAP, systemd DynamicUser) is named
 * "uid<N>". Owns only reading these two files; re-read when they change (mtime), at most once a
 * second.
 */
import { readFileSync, statSync } from 'node:fs';

interface Table {
  readonly mtimeMs: number;
  readonly checkedAt: number;
  readonly map: ReadonlyMap<string, string>;
}

/** Parses "name:x:ID:..." lines into ID -> name (byId) or name -> ID. */
function readTable(file: string, byId: boolean): Map<string, string> {
  const map = new Map<string, string>();
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return map;
  }
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const f = line.split(':');
    if (f.length < 3 || !f[0] || !/^\d+$/.test(f[2]!)) continue;
    if (byId) { if (!map.has(f[2]!)) map.set(f[2]!, f[0]); } else if (!map.has(f[0])) map.set(f[0], f[2]!);
  }
  return map;
}

/** Looks names up in /etc/passwd and /etc/group (paths replaceable for tests). */
export class LocalUsers {
  private passwd: Table | undefined;
  private group: Table | undefined;

  constructor(private readonly files: { readonly passwd: string; readonly group: string } = { passwd: '/etc/passwd', group: '/etc/group' }) {}

  private table(which: 'passwd' | 'group', now: number): ReadonlyMap<string, string> {
    const cur = this[which];
    if (cur && now - cur.checkedAt < 1000) return cur.map;
    let mtimeMs = -1;
    try { mtimeMs = statSync(this.files[which]).mtimeMs; } catch { /* missing: empty */ }
    const map = cur && cur.mtimeMs === mtimeMs ? cur.map : readTable(this.files[which], which === 'passwd');
    this[which] = { mtimeMs, checkedAt: now, map };
    return map;
  }

  /** The user name of `uid`, or "uid<N>" when /etc/passwd has none. */
  userName(uid: number, now = Date.now()): string {
    return this.table('passwd', now).get(String(uid)) ?? `uid${uid}`;
  }

  /** The gid of a group name or number. @returns undefined for an unknown name. */
  groupId(group: string | number, now = Date.now()): number | undefined {
    if (typeof group === 'number') return group;
    const id = this.table('group', now).get(group);
    return id === undefined ? undefined : Number(id);
  }
}
