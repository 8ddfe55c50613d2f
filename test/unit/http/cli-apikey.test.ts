/**
 * `postline apikey create|list|revoke` as a real child process, while an API server runs on the
 * same data directory: the key printed on the last line works at once, and stops working within
 * 2 s of `apikey revoke`.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { runCli } from '../../helpers/postline-process.js';
import { startApi } from './harness.js';

describe('postline apikey', () => {
  it('creates (key alone on the last line), lists and revokes while the server runs', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'postline-apikey-cli-'));
    const dataDir = join(dir, 'var');
    const configFile = join(dir, 'postline.yaml');
    writeFileSync(configFile, stringify({ dataDir, http: null }));
    const api = await startApi({ config: { dataDir } });
    try {
      const made = await runCli(['apikey', 'create', 'shop', '--scope', 'send,read', '--domain', 'Shop.example', 'mail.example', '--rate', '600', '--config', configFile], undefined, {}, { cleanEnv: true });
      assert.equal(made.code, 0, made.stderr);
      const lines = made.stdout.trimEnd().split('\n');
      const key = lines.at(-1)!;
      assert.match(key, /^pl_[a-z2-7]{10}_[A-Za-z0-9_-]{43}$/);
      assert.ok(lines.length > 1 && !lines.slice(0, -1).join('\n').includes(key.split('_')[2]!), 'the secret is printed twice');
      assert.doesNotMatch(made.stderr, /warning/);
      const open = await runCli(['apikey', 'create', 'anywhere', '--scope', 'send', '--config', configFile], undefined, {}, { cleanEnv: true });
      assert.equal(open.code, 0, open.stderr);
      assert.match(open.stderr, /^warning: this key may send as any domain; limit it with --domain D$/m);
      assert.match(open.stdout.trimEnd().split('\n').at(-1)!, /^pl_/, 'the key is still alone on the last line of stdout');
      const reader = await runCli(['apikey', 'create', 'reader', '--scope', 'read', '--config', configFile], undefined, {}, { cleanEnv: true });
      assert.doesNotMatch(reader.stderr, /warning/, 'a key that cannot send got the sender warning');

      const sent = await api.call('/api/v1/messages', { method: 'POST', key: `raw:${key}`, json: { from: 'a@shop.example', to: ['b@example.net'], text: 'x' } });
      assert.equal(sent.status, 202);
      assert.equal((await api.call('/api/v1/messages', { method: 'POST', key: `raw:${key}`, json: { from: 'a@other.example', to: ['b@example.net'], text: 'x' } })).status, 403);

      const listed = await runCli(['apikey', 'list', '--config', configFile], undefined, {}, { cleanEnv: true });
      assert.equal(listed.code, 0, listed.stderr);
      assert.equal(listed.stdout.split('\n')[0], 'NAME\tPREFIX\tSCOPES\tDOMAINS\tRATE\tCREATED\tSTATE');
      const shop = listed.stdout.split('\n').find((l) => l.startsWith('shop\t'));
      assert.ok(shop, listed.stdout);
      assert.deepEqual(shop.split('\t').slice(1, 5), [`pl_${key.split('_')[1]}_...`, 'send,read', 'shop.example,mail.example', '600/min']);
      assert.ok(!listed.stdout.includes(key.split('_')[2]!));
      const json = await runCli(['apikey', 'list', '--json', '--config', configFile], undefined, {}, { cleanEnv: true });
      assert.equal(JSON.parse(json.stdout).find((k: { name: string }) => k.name === 'shop').ratePerMinute, 600);

      const dup = await runCli(['apikey', 'create', 'shop', '--scope', 'send', '--config', configFile], undefined, {}, { cleanEnv: true });
      assert.equal(dup.code, 1);
      assert.match(dup.stderr, /exists/);
      const badScope = await runCli(['apikey', 'create', 'x', '--scope', 'root', '--config', configFile], undefined, {}, { cleanEnv: true });
      assert.equal(badScope.code, 1);
      assert.match(badScope.stderr, /unknown scope root/);
      const badRate = await runCli(['apikey', 'create', 'y', '--scope', 'send', '--rate', 'fast', '--config', configFile], undefined, {}, { cleanEnv: true });
      assert.equal(badRate.code, 1);

      const revoked = await runCli(['apikey', 'revoke', 'shop', '--config', configFile], undefined, {}, { cleanEnv: true });
      assert.equal(revoked.code, 0, revoked.stderr);
      const t0 = Date.now();
      let status = 0;
      for (let i = 0; i < 40 && Date.now() - t0 < 2000; i++) {
        status = (await api.call('/api/v1/events', { key: `raw:${key}` })).status;
        if (status === 401) break;
        await new Promise((r) => setTimeout(r, 50));
      }
      assert.equal(status, 401);
      const again = await runCli(['apikey', 'revoke', 'shop', '--config', configFile], undefined, {}, { cleanEnv: true });
      assert.equal(again.code, 1);
      assert.match(again.stderr, /no active API key named shop/);
    } finally {
      await api.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('list and revoke create no queue where there is none', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'postline-apikey-none-'));
    try {
      const configFile = join(dir, 'postline.yaml');
      writeFileSync(configFile, stringify({ dataDir: join(dir, 'var') }));
      for (const args of [['apikey', 'list'], ['apikey', 'revoke', 'x']]) {
        const r = await runCli([...args, '--config', configFile], undefined, {}, { cleanEnv: true });
        assert.equal(r.code, 2, r.stderr);
        assert.match(r.stderr, /no queue at/);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
