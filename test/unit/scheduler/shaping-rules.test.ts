/**
 * Traffic shaping rule matching (src/scheduler/shaping-rules.ts, src/config/delivery-shaping.ts):
 * destination names, precedence, MX host suffixes, the limits a rule gives, and the default
 * throttle patterns against the replies the big providers send.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { validateConfig } from '../../../src/config/load.js';
import { DEFAULT_THROTTLE_PATTERNS, destinationText, parseDestinationMatch } from '../../../src/config/delivery-shaping.js';
import { bestRule, compilePatterns, compileRules, factsOfKey, hopFacts, limitsOf, matchPattern } from '../../../src/scheduler/shaping-rules.js';
import type { NextHop } from '../../../src/routing/types.js';

const mx = (domain: string): NextHop => ({ kind: 'mx', domain, port: 25, tls: 'opportunistic' });
const host = (h: string, port = 25): NextHop => ({ kind: 'host', host: h, port, tls: 'none' });

test('destination names: every form parses to one canonical text; others are refused', () => {
  const cases: Array<[string, string]> = [
    ['Example.COM.', 'example.com'], ['.outlook.com', '.outlook.com'], ['*.Outlook.com', '.outlook.com'],
    ['[127.0.0.1]', '[127.0.0.1]'], ['[smtp.example.org]:587', '[smtp.example.org]:587'],
    ['mx:gmail.com:25', 'mx:gmail.com:25'], ['host:127.0.0.1:2525', 'host:127.0.0.1:2525'],
  ];
  for (const [text, canon] of cases) assert.equal(destinationText(parseDestinationMatch(text)!), canon, text);
  for (const bad of ['', 'a b', 'user@example.com', '[x]:99999', '*.', 'ex..ample', 'x'.repeat(301)]) assert.equal(parseDestinationMatch(bad), undefined, bad);
});

test('the most specific rule wins: key, [host]:port, [host], domain, then the longest suffix', () => {
  const rules = compileRules([
    { match: '.com', maxConnections: 1 },
    { match: '.mail.protection.outlook.com', maxConnections: 2 },
    { match: '.outlook.com', maxConnections: 3 },
    { match: 'contoso.com', maxConnections: 4 },
    { match: '[127.0.0.1]', maxConnections: 5 },
    { match: '[127.0.0.1]:2600', maxConnections: 6 },
    { match: 'host:127.0.0.1:2700', maxConnections: 7 },
  ]);
  assert.equal(rules.wantsNames, true);
  const best = (key: string, hop: NextHop, domain: string, names?: string[]) => bestRule(rules, hopFacts(key, hop, domain, names))?.maxConnections;
  assert.equal(best('mx:contoso.com:25', mx('contoso.com'), 'contoso.com', ['contoso-com.mail.protection.outlook.com']), 4, 'exact domain over any suffix');
  assert.equal(best('mx:fabrikam.example:25', mx('fabrikam.example'), 'fabrikam.example', ['fabrikam-example.mail.protection.outlook.com']), 2, 'longest MX host suffix');
  assert.equal(best('mx:hotmail.com:25', mx('hotmail.com'), 'hotmail.com', ['hotmail-com.olc.protection.outlook.com']), 3);
  assert.equal(best('mx:hotmail.com:25', mx('hotmail.com'), 'hotmail.com', []), 1, 'without the MX names only the domain suffix');
  assert.equal(best('mx:other.example:25', mx('other.example'), 'other.example', ['mx.other.example']), undefined, 'no rule: the defaults');
  assert.equal(best('host:127.0.0.1:2600', host('127.0.0.1', 2600), 'a.test'), 6);
  assert.equal(best('host:127.0.0.1:2601', host('127.0.0.1', 2601), 'a.test'), 5);
  assert.equal(best('host:127.0.0.1:2700', host('127.0.0.1', 2700), 'a.test'), 7);
  // A route is also matched by the recipient domain of its mail, and by its host name.
  const byDomain = compileRules([{ match: 'limited.test', messagesPerSecond: 5 }, { match: '.relay.example', maxConnections: 9 }]);
  assert.equal(bestRule(byDomain, hopFacts('host:127.0.0.1:2800', host('127.0.0.1', 2800), 'limited.test'))?.messagesPerSecond, 5);
  assert.equal(bestRule(byDomain, hopFacts('host:smtp.relay.example:25', host('smtp.relay.example'), 'x.test'))?.maxConnections, 9);
  assert.equal(factsOfKey('mx:gmail.com:25')!.domain, 'gmail.com');
  assert.equal(factsOfKey('nonsense'), undefined);
});

test('limitsOf: what a rule leaves out is the default', () => {
  const d = { connectionsPerDestination: 10, messagesPerConnection: 100 };
  assert.deepEqual(limitsOf(undefined, d), { maxConnections: 10, messagesPerConnection: 100, messageRates: [] });
  assert.deepEqual(limitsOf({ match: 'a.test', messagesPerSecond: 20, messagesPerHour: 1000, connectionsPerMinute: 6 }, d), {
    maxConnections: 10, messagesPerConnection: 100, connectionsPerMinute: 6, rule: 'a.test',
    messageRates: [{ count: 20, periodMs: 1000 }, { count: 1000, periodMs: 3_600_000 }],
  });
});

test('the default throttle patterns know the big providers\' "slow down" replies', () => {
  const p = compilePatterns(DEFAULT_THROTTLE_PATTERNS);
  const action = (reply: string) => matchPattern(p, reply)?.action;
  assert.equal(action('421 4.7.28 [192.0.2.1 15] Our system has detected an unusual rate of unsolicited mail originating from your IP address. To protect our users from spam, mail sent from your IP address has been temporarily rate limited.'), 'suspend');
  assert.equal(action('421 4.7.0 Try again later, closing connection. x-gsmtp'), 'throttle');
  assert.equal(action('451 4.7.650 The mail server [192.0.2.1] has been temporarily rate limited due to IP reputation.'), 'suspend');
  assert.equal(action('451 4.7.500 Server busy. Please try again later from [192.0.2.1].'), 'throttle');
  assert.equal(action('421 4.7.0 [TS01] Messages from 192.0.2.1 temporarily deferred due to unexpected volume or user complaints'), 'suspend');
  assert.equal(action('421 [TS02] Messages from 192.0.2.1 temporarily deferred'), 'suspend');
  assert.equal(action('421 4.7.0 Too many connections from your IP'), 'throttle');
  assert.equal(action('450 4.7.1 Rate limited, slow down'), 'throttle');
  assert.equal(action('451 4.7.1 Greylisted, please try again later'), undefined, 'greylisting is no throttle');
  assert.equal(action('550 5.1.1 User unknown'), undefined);
  assert.equal(action('452 4.2.2 Mailbox full'), undefined);
});

test('the configuration checks rules and patterns and names the key', () => {
  const ok = validateConfig({ delivery: { shaping: [{ match: '*.outlook.com', maxConnections: 2, messagesPerMinute: 600 }], throttlePatterns: [{ match: '^421 ', action: 'throttle', durationMs: 60_000, factor: 0.25 }] } }, '/tmp', {});
  assert.equal(ok.delivery.shaping[0]!.maxConnections, 2);
  assert.equal(ok.delivery.throttlePatterns.length, 1);
  assert.equal(validateConfig({}, '/tmp', {}).delivery.throttlePatterns.length, DEFAULT_THROTTLE_PATTERNS.length, 'defaults when absent');
  assert.throws(() => validateConfig({ delivery: { shaping: [{ match: 'a b' }] } }, '/tmp', {}), /delivery\.shaping\.0\.match/);
  assert.throws(() => validateConfig({ delivery: { shaping: [{ match: 'a.test', messagesPerSecond: 0 }] } }, '/tmp', {}), /delivery\.shaping\.0\.messagesPerSecond/);
  assert.throws(() => validateConfig({ delivery: { throttlePatterns: [{ match: '(', action: 'suspend', durationMs: 60_000 }] } }, '/tmp', {}), /delivery\.throttlePatterns\.0\.match/);
  assert.throws(() => validateConfig({ delivery: { throttlePatterns: [{ match: 'x', action: 'pause', durationMs: 60_000 }] } }, '/tmp', {}), /delivery\.throttlePatterns\.0\.action/);
});
