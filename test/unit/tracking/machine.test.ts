/**
 * Which opens and clicks machines made (src/tracking/machine.ts): image proxies, privacy
 * prefetchers, link scanners, scripted clients, HEAD requests and hits right after the delivery.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { classifyRequest } from '../../../src/tracking/machine.js';

const browser = 'Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15';
const hit = (userAgent: string, over: { clientAddress?: string; method?: string; sinceDeliveryMs?: number } = {}) =>
  classifyRequest({ userAgent, clientAddress: over.clientAddress ?? '198.51.100.4', method: over.method ?? 'GET', ...(over.sinceDeliveryMs !== undefined ? { sinceDeliveryMs: over.sinceDeliveryMs } : {}) }, 2000);

test('known proxies, scanners and clients are machines, with the reason', () => {
  const cases: [string, string][] = [
    ['Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)', 'google-image-proxy'],
    ['YahooMailProxy; https://help.yahoo.com/kb/yahoo-mail-proxy-SLN28749.html', 'yahoo-mail-proxy'],
    ['Mozilla/5.0', 'apple-mpp'],
    ['Barracuda Sentinel (EE)', 'scanner:barracuda'],
    ['Mozilla/5.0 Mimecast URL Protect', 'scanner:mimecast'],
    ['Proofpoint URL Defense', 'scanner:proofpoint'],
    ['Microsoft Office Existence Discovery', 'scanner:microsoft'],
    ['Mozilla/5.0 (compatible; BingPreview/1.0b)', 'scanner:microsoft'],
    ['Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)', 'link-preview'],
    ['python-requests/2.31.0', 'automation'],
    ['curl/8.5.0', 'automation'],
    ['', 'no-user-agent'],
  ];
  for (const [ua, reason] of cases) assert.deepEqual(hit(ua), { machine: true, reason }, ua);
  assert.deepEqual(hit(browser, { clientAddress: '17.58.1.2' }), { machine: true, reason: 'apple-mpp' });
  assert.deepEqual(hit(browser, { method: 'HEAD' }), { machine: true, reason: 'head-request' });
});

test('a browser is a person unless it came within the window after the delivery', () => {
  assert.deepEqual(hit(browser), { machine: false });
  assert.deepEqual(hit(browser, { sinceDeliveryMs: 60_000 }), { machine: false });
  assert.deepEqual(hit(browser, { sinceDeliveryMs: 800 }), { machine: true, reason: 'soon-after-delivery' });
  assert.deepEqual(classifyRequest({ userAgent: browser, clientAddress: '198.51.100.4', method: 'GET', sinceDeliveryMs: 800 }, 0), { machine: false }, 'window 0: not checked');
});
