/**
 * SMTP AUTH users (RFC 4954): `${dataDir}/users.json`, passwords stored as scrypt hashes, plus the
 * envelope senders each user may use (like Postfix's smtpd_sender_login_maps).
 *
 * The file is written atomically (temp file, fsync, rename) by the CLI and re-read by the server when
 * its modification time changes, so `postline user add` takes effect without a restart.
 */
import { scrypt as scryptCb, randomBytes, timingSafeEqual } from 'node:crypto';
import { promisify } from 'node:util';
import { readFileSync, statSync, mkdirSync, openSync, writeSync, fsyncSync, closeSync, renameSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { PostlineError } from '../core/errors.js';

const scrypt = promisify(scryptCb) as (pw: string, salt: Buffer, len: number, opts: { N: number; r: number; p: number; maxmem: number }) => Promise<Buffer>;

/** scrypt cost parameters (N=2^15, r=8, p=1: about 32 MiB and tens of ms per check). */
const PARAMS = { N: 1 << 15, r: 8, p: 1, maxmem: 64 * 1024 * 1024 };
const KEYLEN = 32;

export interface UserRecord {
  /** "scrypt$N$r$p$saltB64$hashB64" */
  readonly hash: string;
  /** Allowed envelope senders: full addresses or "@domain"; empty/absent = the default rule. */
  readonly senders?: readonly string[];
  readonly createdAt: string;
}

interface UsersFile {
  readonly version: 1;
  users: Record<string, UserRecord>;
}

/** Hashes a password with scrypt; returns the storable string. */
export async function hashPassword(password: string): Promise<string> {
  const salt = randomBytes(16);
  const key = await scrypt(password, salt, KEYLEN, PARAMS);
  return `scrypt$${PARAMS.N}$${PARAMS.r}$${PARAMS.p}$${salt.toString('base64')}$${key.toString('base64')}`;
}

/** Checks a password against a stored hash in constant time. Malformed hashes never match. */
export async function verifyPassword(password: string, stored: string): Promise<boolean> {
  const parts = stored.split('$');
  if (parts.length !== 6 || parts[0] !== 'scrypt') return false;
  const [N, r, p] = parts.slice(1, 4).map(Number) as [number, number, number];
  const salt = Buffer.from(parts[4]!, 'base64');
  const want = Buffer.from(parts[5]!, 'base64');
  if (!N || !r || !p || want.length === 0) return false;
  const got = await scrypt(password, salt, want.length, { N, r, p, maxmem: 256 * 1024 * 1024 });
  return got.length === want.length && timingSafeEqual(got, want);
}

/** The users database of one data directory. */
export class UserStore {
  private cache?: { mtimeMs: number; size: number; data: UsersFile };
  readonly file: string;

  constructor(dataDir: string) {
    this.file = join(dataDir, 'users.json');
  }

  /** Reads the file (cached by mtime). A missing file is an empty database. @throws PostlineError when the file is corrupt. */
  read(): UsersFile {
    let st;
    try {
      st = statSync(this.file);
    } catch {
      return { version: 1, users: {} };
    }
    if (this.cache && this.cache.mtimeMs === st.mtimeMs && this.cache.size === st.size) return this.cache.data;
    let data: UsersFile;
    try {
      data = JSON.parse(readFileSync(this.file, 'utf8')) as UsersFile;
      if (typeof data !== 'object' || data === null || typeof data.users !== 'object') throw new Error('no "users" map');
    } catch (err) {
      throw new PostlineError('ERR_USERS_FILE', `cannot read ${this.file}: ${(err as Error).message}`);
    }
    this.cache = { mtimeMs: st.mtimeMs, size: st.size, data };
    return data;
  }

  /** User names, sorted. */
  list(): { name: string; senders: readonly string[]; createdAt: string }[] {
    const { users } = this.read();
    return Object.keys(users).sort().map((name) => ({ name, senders: users[name]!.senders ?? [], createdAt: users[name]!.createdAt }));
  }

  get(name: string): UserRecord | undefined {
    return Object.hasOwn(this.read().users, name) ? this.read().users[name] : undefined;
  }

  /** Adds or replaces a user. @throws PostlineError on a bad name or empty password. */
  async set(name: string, password: string, senders?: readonly string[]): Promise<void> {
    if (!/^[^\s:]{1,256}$/.test(name)) throw new PostlineError('ERR_USER_NAME', `bad user name "${name}": 1-256 characters, no spaces or colons`, { temporary: false });
    if (password.length === 0) throw new PostlineError('ERR_USER_PASSWORD', 'the password must not be empty', { temporary: false });
    const data = structuredClone(this.read());
    data.users[name] = { hash: await hashPassword(password), senders: senders && senders.length ? [...senders] : undefined, createdAt: new Date().toISOString() };
    this.write(data);
  }

  /** Deletes a user. @returns false when there was no such user. */
  delete(name: string): boolean {
    const data = structuredClone(this.read());
    if (!Object.hasOwn(data.users, name)) return false;
    delete data.users[name];
    this.write(data);
    return true;
  }

  /** True when the name and password match a user. Unknown users cost the same scrypt work. */
  async authenticate(name: string, password: string): Promise<boolean> {
    const rec = this.get(name);
    if (!rec) {
      await verifyPassword(password, DUMMY_HASH);
      return false;
    }
    return verifyPassword(password, rec.hash);
  }

  private write(data: UsersFile): void {
    mkdirSync(dirname(this.file), { recursive: true });
    const tmp = `${this.file}.tmp-${process.pid}`;
    const fd = openSync(tmp, 'w', 0o600);
    try {
      writeSync(fd, JSON.stringify(data, null, 2) + '\n');
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, this.file);
    this.cache = undefined;
  }
}

const DUMMY_HASH = `scrypt$${PARAMS.N}$${PARAMS.r}$${PARAMS.p}$AAAAAAAAAAAAAAAAAAAAAA==$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=`;
