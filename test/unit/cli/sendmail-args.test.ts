import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseSendmailArgs } from '../../../src/cli/sendmail-args.js';
import { EX, SendmailExit, exitForRefusal } from '../../../src/cli/sysexits.js';
import { invokedAs } from '../../../src/cli/sendmail.js';

const usageError = (argv: string[]): void => {
  assert.throws(() => parseSendmailArgs(argv), (e: unknown) => e instanceof SendmailExit && e.exitCode === EX.USAGE, argv.join(' '));
};

test('Debian cron: -FCronDaemon -i -B8BITMIME -oem user', () => {
  const a = parseSendmailArgs(['-FCronDaemon', '-i', '-B8BITMIME', '-oem', 'user']);
  assert.equal(a.mode, 'deliver');
  assert.equal(a.fullName, 'CronDaemon');
  assert.equal(a.ignoreDots, true);
  assert.equal(a.bodyType, '8BITMIME');
  assert.deepEqual(a.ignored, ['-oem']);
  assert.deepEqual(a.recipients, ['user']);
});

test('PHP: -t -i, also as one cluster, and -f attached or separate, -r as -f', () => {
  for (const argv of [['-t', '-i'], ['-ti'], ['-it']]) {
    const a = parseSendmailArgs(argv);
    assert.equal(a.extract, true);
    assert.equal(a.ignoreDots, true);
  }
  assert.equal(parseSendmailArgs(['-fme@x.test']).from, 'me@x.test');
  assert.equal(parseSendmailArgs(['-f', 'me@x.test', 'a@y']).from, 'me@x.test');
  assert.equal(parseSendmailArgs(['-r', 'me@x.test']).from, 'me@x.test');
  assert.equal(parseSendmailArgs(['-f', '']).from, '');
  assert.equal(parseSendmailArgs(['-ti', '-fme@x.test']).from, 'me@x.test');
  assert.equal(parseSendmailArgs(['-tf', 'me@x.test']).from, 'me@x.test'); // a value after a cluster of flags
  assert.equal(parseSendmailArgs(['-oi']).ignoreDots, true);
});

test('DSN options -N -R -V', () => {
  assert.deepEqual(parseSendmailArgs(['-N', 'never', 'a@x']).notify, ['NEVER']);
  assert.deepEqual(parseSendmailArgs(['-Nsuccess,delay', 'a@x']).notify, ['SUCCESS', 'DELAY']);
  assert.equal(parseSendmailArgs(['-R', 'hdrs']).ret, 'HDRS');
  assert.equal(parseSendmailArgs(['-Rfull']).ret, 'FULL');
  assert.equal(parseSendmailArgs(['-V', 'abc-123']).envid, 'abc-123');
  usageError(['-N', 'sometimes']);
  usageError(['-N', 'never,success']);
  usageError(['-R', 'body']);
  usageError(['-V', 'two words']);
  usageError(['-B', 'BINARYMIME']);
});

test('modes: -bs -bp -bi -bm -q, and the names mailq and newaliases', () => {
  assert.equal(parseSendmailArgs(['-bs']).mode, 'smtp');
  assert.equal(parseSendmailArgs(['-b', 'p']).mode, 'list');
  assert.equal(parseSendmailArgs(['-bi']).mode, 'aliases');
  assert.equal(parseSendmailArgs(['-I']).mode, 'aliases');
  assert.equal(parseSendmailArgs(['-bm', 'a@x']).mode, 'deliver');
  assert.equal(parseSendmailArgs([], 'mailq').mode, 'list');
  assert.equal(parseSendmailArgs(['-v'], 'mailq').verbose, true);
  assert.equal(parseSendmailArgs([], 'newaliases').mode, 'aliases');
  assert.equal(parseSendmailArgs(['-q']).mode, 'flush');
  const r = parseSendmailArgs(['-qRexample.org']);
  assert.equal(r.mode, 'flush');
  assert.equal(r.flushDomain, 'example.org');
  assert.equal(parseSendmailArgs(['-qI01M96JWBTNRR4GTH9P']).flushId, '01M96JWBTNRR4GTH9P');
  assert.equal(parseSendmailArgs(['-q30m']).mode, 'nothing'); // the interval: ignored
  assert.equal(parseSendmailArgs(['-bh']).mode, 'nothing');
  assert.equal(parseSendmailArgs(['--help']).mode, 'help');
  usageError(['-bd']);
  usageError(['-bv', 'a@x']);
  usageError(['-qS']);
  usageError(['-bz']);
});

test('options end at the first recipient or at --; unknown options and missing values are usage errors', () => {
  const a = parseSendmailArgs(['-i', 'a@x', '-t']);
  assert.deepEqual(a.recipients, ['a@x', '-t']);
  assert.equal(a.extract, false);
  assert.deepEqual(parseSendmailArgs(['-i', '--', '-odd@x']).recipients, ['-odd@x']);
  usageError(['-k']);
  usageError(['--long']);
  usageError(['-f']);
  usageError(['-F']);
  const ign = parseSendmailArgs(['-G', '-U', '-m', '-n', '-x', '-h', '17', '-L', 'label', '-O', 'x=y', '-X', '/tmp/log', '-e', 'm', '-odb', '-o7', 'a@x']);
  assert.deepEqual(ign.recipients, ['a@x']);
  assert.equal(ign.ignored.length, 12);
});

test('the called name picks the mode; exit codes of server refusals by their status class', () => {
  assert.equal(invokedAs('/usr/sbin/sendmail'), 'sendmail');
  assert.equal(invokedAs('/usr/bin/mailq'), 'mailq');
  assert.equal(invokedAs('/usr/bin/newaliases'), 'newaliases');
  assert.equal(invokedAs('/usr/lib/node_modules/postline/bin/postline.js'), undefined);
  assert.equal(exitForRefusal('550 5.1.1 no such user'), EX.NOUSER);
  assert.equal(exitForRefusal('552 5.3.4 Message size exceeds fixed limit'), EX.DATAERR);
  assert.equal(exitForRefusal('554 5.4.6 Too many hops'), EX.DATAERR);
  assert.equal(exitForRefusal('554 5.7.1 refused'), EX.NOPERM);
  assert.equal(exitForRefusal('554 5.4.0 something'), EX.UNAVAILABLE);
  assert.equal(exitForRefusal('554 no enhanced code'), EX.UNAVAILABLE);
});
