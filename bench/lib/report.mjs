// Summary (medians, spread, ratios, ceiling %) and the Markdown report.
import { pointKey } from './profiles.mjs';
import { slope } from './load.mjs';

const MiB = 1024 * 1024;
const METRICS = ['acceptedPerSec', 'e2ePerSec', 'p50Ms', 'p99Ms', 'cpuMsPerMsg', 'fsyncsPerMsg', 'peakRssBytes', 'peakPssBytes', 'acceptSeconds', 'messages'];

const finite = (xs) => xs.filter((x) => x !== null && x !== undefined && Number.isFinite(x)).sort((a, b) => a - b);
export function median(xs) {
  const v = finite(xs);
  if (!v.length) return null;
  const m = Math.floor(v.length / 2);
  return v.length % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
}
const spread = (xs) => { const v = finite(xs); return v.length ? { min: v[0], max: v[v.length - 1], n: v.length } : null; };
/** { min, max, n } of the finite values, or null. */
export const spreadOf = spread;

/**
 * Per disk profile and point: each server's median and min-max per metric, the median of the
 * per-rep Postline/Postfix ratios, and each server's accepted rate as a % of the ceiling's median
 * (the ceiling is measured in the first disk profile; it does no I/O, so it holds for all).
 */
export function summarize(points, runs, disks, servers) {
  const out = {};
  for (const d of disks) {
    const perPoint = {};
    for (const p of points) {
      const key = pointKey(p);
      const mine = runs.filter((r) => r.point === key && r.disk === d);
      const ceil = runs.filter((r) => r.point === key && r.server === 'ceiling' && !r.error);
      const s = { point: key, size: p.size, sessions: p.sessions, reuse: p.reuse, servers: {}, ratio: {}, ceilingPct: {} };
      for (const name of [...servers, 'ceiling']) {
        const rs = (name === 'ceiling' ? ceil : mine.filter((r) => r.server === name));
        if (!rs.length) continue;
        const ok = rs.filter((r) => !r.error);
        s.servers[name] = { runs: rs.length, errors: rs.length - ok.length };
        for (const m of METRICS) { s.servers[name][m] = median(ok.map((r) => r[m])); s.servers[name][m + 'Spread'] = spread(ok.map((r) => r[m])); }
      }
      if (servers.includes('postline') && servers.includes('postfix')) {
        for (const m of METRICS) {
          const ratios = [];
          for (const rep of new Set(mine.map((r) => r.rep))) {
            const a = mine.find((r) => r.rep === rep && r.server === 'postline' && !r.error);
            const b = mine.find((r) => r.rep === rep && r.server === 'postfix' && !r.error);
            if (a && b && a[m] != null && b[m]) ratios.push(a[m] / b[m]);
          }
          s.ratio[m] = median(ratios);
          s.ratio[m + 'Spread'] = spread(ratios);
        }
      }
      const c = s.servers.ceiling;
      for (const name of servers) {
        const x = s.servers[name];
        if (c?.acceptedPerSec && x) s.ceilingPct[name] = { accepted: 100 * x.acceptedPerSec / c.acceptedPerSec, e2e: x.e2ePerSec != null ? 100 * x.e2ePerSec / c.acceptedPerSec : null };
      }
      perPoint[key] = s;
    }
    const all = (m) => Object.values(perPoint).map((s) => s.ratio[m]).filter((x) => x != null);
    out[d] = { perPoint, medianRatioAllPoints: Object.fromEntries(METRICS.map((m) => [m, median(all(m))])) };
  }
  return out;
}

/**
 * Sustain figures from one sampled run: accepted and delivered rates, and the queue depth's slope
 * over the steady part of the load (after the first 20 %). Rates in msg/s; slope in messages/s.
 */
export function sustainMetrics(r) {
  const load = (r.samples ?? []).filter((s) => s.t <= r.acceptSeconds + 1e-9);
  const steady = load.filter((s) => s.t >= 0.2 * r.acceptSeconds);
  const end = load[load.length - 1];
  const depths = load.map((s) => s.depth).filter((x) => x != null);
  const steadyDelivered = slope(steady.map((s) => s.t), steady.map((s) => s.delivered));
  const withDepth = steady.filter((s) => s.depth != null);
  return {
    seconds: r.acceptSeconds, acceptedPerSec: r.acceptedPerSec,
    deliveredPerSec: end ? end.delivered / r.acceptSeconds : null,
    deliveredPct: end && r.acceptedPerSec ? (100 * end.delivered / r.acceptSeconds) / r.acceptedPerSec : null,
    steadyDeliveredPerSec: steadyDelivered,
    steadyDeliveredPct: steadyDelivered != null && r.acceptedPerSec ? 100 * steadyDelivered / r.acceptedPerSec : null,
    queueSlopePerSec: slope(withDepth.map((s) => s.t), withDepth.map((s) => s.depth)),
    maxDepth: depths.length ? Math.max(...depths) : null, depthAtLoadEnd: end?.depth ?? null,
    drainSeconds: r.e2eSeconds != null ? r.e2eSeconds - r.acceptSeconds : null, samples: load.length,
  };
}

const f = (v, d = 0) => (v === null || v === undefined || !Number.isFinite(v) ? '–' : Number(v).toFixed(d));
const mb = (b) => f(b / MiB, 0);
const sp = (s, d = 0, k = 1) => (s && s.n > 1 ? ` (${f(s.min * k, d)}–${f(s.max * k, d)})` : '');
const diskTitle = (d, res) => (d === 'normal' ? 'normal disk (this host\'s fsync, counted, no delay)'
  : `slow disk: +${res.options.slowDelayUs / 1000} ms after every fsync-family call, ${d === 'slow' ? 'each call sleeping on its own (a device with unlimited parallelism)' : 'one sleep at a time across all processes (a device serving one flush at a time)'}`);

function gridTables(L, res, d) {
  const S = res.summary[d];
  const both = Object.values(S.perPoint).some((s) => s.servers.postfix) && Object.values(S.perPoint).some((s) => s.servers.postline);
  L.push(`### ${diskTitle(d, res)}`, '');
  L.push('Throughput: median over reps, (min–max) beside it; ratio = median of per-rep Postline/Postfix ratios (min–max). Ceiling % = accepted rate as a share of the Node ceiling\'s at that point.', '');
  L.push('| point | run s PL / PF (min) | accepted msg/s PL | accepted msg/s PF | ratio | end-to-end msg/s PL | end-to-end msg/s PF | ratio | ceiling msg/s | PL % ceil | PF % ceil |');
  L.push('|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|');
  for (const s of Object.values(S.perPoint)) {
    const a = s.servers.postline ?? {}, b = s.servers.postfix ?? {}, c = s.servers.ceiling ?? {};
    const err = (x) => (x?.errors ? ` ⚠${x.errors}` : '');
    L.push(`| ${s.point} | ${f(a.acceptSecondsSpread?.min, 1)} / ${f(b.acceptSecondsSpread?.min, 1)} | ${f(a.acceptedPerSec)}${sp(a.acceptedPerSecSpread)}${err(a)} | ${f(b.acceptedPerSec)}${sp(b.acceptedPerSecSpread)}${err(b)} ` +
      `| ${f(s.ratio.acceptedPerSec, 2)}${sp(s.ratio.acceptedPerSecSpread, 2)} | ${f(a.e2ePerSec)}${sp(a.e2ePerSecSpread)} | ${f(b.e2ePerSec)}${sp(b.e2ePerSecSpread)} | ${f(s.ratio.e2ePerSec, 2)}${sp(s.ratio.e2ePerSecSpread, 2)} ` +
      `| ${f(c.acceptedPerSec)}${sp(c.acceptedPerSecSpread)} | ${f(s.ceilingPct.postline?.accepted)}% | ${f(s.ceilingPct.postfix?.accepted)}% |`);
  }
  if (both) {
    const m = S.medianRatioAllPoints;
    L.push(`| **median ratio, all points** | | | | **${f(m.acceptedPerSec, 2)}** | | | **${f(m.e2ePerSec, 2)}** | | | |`);
  }
  L.push('');
  L.push('Cost per message: fsync-family calls (slowsync shim, every process of the server, accepted and delivered), CPU (all processes, until the sink had every message), peak RSS (sum over processes; Postfix PSS in parentheses), probe latency.', '');
  L.push('| point | fsyncs/msg PL | fsyncs/msg PF | CPU ms/msg PL | CPU ms/msg PF | ratio | CPU ms/msg ceiling | peak RSS MB PL / PF (PSS) | p50 ms PL / PF | p99 ms PL / PF |');
  L.push('|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|');
  for (const s of Object.values(S.perPoint)) {
    const a = s.servers.postline ?? {}, b = s.servers.postfix ?? {}, c = s.servers.ceiling ?? {};
    L.push(`| ${s.point} | ${f(a.fsyncsPerMsg, 2)}${sp(a.fsyncsPerMsgSpread, 2)} | ${f(b.fsyncsPerMsg, 2)}${sp(b.fsyncsPerMsgSpread, 2)} ` +
      `| ${f(a.cpuMsPerMsg, 2)}${sp(a.cpuMsPerMsgSpread, 2)} | ${f(b.cpuMsPerMsg, 2)}${sp(b.cpuMsPerMsgSpread, 2)} | ${f(s.ratio.cpuMsPerMsg, 2)} | ${f(c.cpuMsPerMsg, 3)} ` +
      `| ${mb(a.peakRssBytes)} / ${mb(b.peakRssBytes)} (${mb(b.peakPssBytes)}) | ${f(a.p50Ms, 1)} / ${f(b.p50Ms, 1)} | ${f(a.p99Ms, 1)} / ${f(b.p99Ms, 1)} |`);
  }
  L.push('', '⚠n: n runs of that server failed at that point (JSON `runs[].error`); failed runs are left out of the medians.', '');
}

function apiTables(L, res) {
  const A = res.api, S = A.summary ?? {};
  L.push('## HTTP API beside SMTP (same run, normal disk)', '');
  L.push(`\`POST /api/v1/messages\` with autocannon: 2 KB of text in the JSON body, one recipient at the sink's domain, 50 connections, a fixed number of requests sized from a warm-up to last ≥ ${res.options.minSeconds} s; end to end = until the sink had every 2xx. SMTP: Postline at ${S.smtpPoint ?? '2k:50:many'} (smtp-source, 50 sessions, many messages per connection) from ${S.smtpSource === 'grid' ? 'the grid of this run' : 'runs in this section (the grid did not run that point)'}. Latency: API = autocannon's per-request latency; SMTP = the probe's. Median over ${S.runs ?? 0} run(s).`, '');
  if (A.error) L.push(`**ERROR:** ${A.error}`, '');
  L.push('| path | runs | run s | accepted msg/s | non-2xx | end-to-end msg/s | p50 ms | p99 ms | CPU ms/msg | fsyncs/msg |', '|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|');
  L.push(`| HTTP API${S.errors ? ` ⚠${S.errors}` : ''} | ${S.runs} | ${f(S.acceptSeconds, 1)} | **${f(S.acceptedPerSec)}**${sp(S.acceptedSpread)} | ${S.non2xx ?? '–'} | ${f(S.e2ePerSec)} | ${f(S.p50Ms, 1)} | ${f(S.p99Ms, 1)} | ${f(S.cpuMsPerMsg, 2)} | ${f(S.fsyncsPerMsg, 2)} |`);
  L.push(`| SMTP ${S.smtpPoint} | ${S.smtpRuns} | | **${f(S.smtpAcceptedPerSec)}** | | ${f(S.smtpE2ePerSec)} | ${f(S.smtpP50Ms, 1)} | ${f(S.smtpP99Ms, 1)} | ${f(S.smtpCpuMsPerMsg, 2)} | ${f(S.smtpFsyncsPerMsg, 2)} |`);
  L.push('');
  L.push(`API / SMTP accepted: **${f(S.ratio, 2)}** (target ≥ 0.70: ${S.targetMet == null ? 'not measured' : S.targetMet ? '**met**' : '**not met**'})` +
    `${S.postfixAcceptedPerSec ? `; Postfix over SMTP at the same point: ${f(S.postfixAcceptedPerSec)} msg/s (API / Postfix ${f(S.acceptedPerSec / S.postfixAcceptedPerSec, 2)})` : ''}.`, '');
  const st = {};
  for (const r of A.runs ?? []) for (const [k, v] of Object.entries(r.statuses ?? {})) st[k] = (st[k] ?? 0) + v;
  L.push(`The load generator's own CPU (the bench process, where autocannon runs; not in the table): ${f(S.clientCpuMsPerMsg, 2)} ms/msg, on the same 2 cores.`, '');
  L.push(`Answers by status over the measured runs: ${Object.entries(st).map(([k, v]) => `${k}: ${v}`).join(', ') || '–'}.`, '');
  L.push('```sh', A.keyCommand ?? '# (no key: the section failed before)', `# ${A.command}`, ...(A.smtpRuns ?? []).slice(0, 1).map((r) => `${r.command}   # the section's SMTP ${S.smtpPoint} run`), '```', '');
}

function webhookTables(L, res) {
  const W = res.webhooks;
  L.push('## Webhooks (normal disk)', '');
  L.push(`Postline restarted with one endpoint, the bench's receiver (${W.receiver}). Event ids and the backlog: the event log's newest id (read-only SQLite connection, sampled) minus the highest id the receiver acknowledged; the dispatcher sends in id order and advances only on a 2xx, so reaching the last id means every event arrived.`, '');
  if (W.error) L.push(`**ERROR:** ${W.error}`, '');
  const T = W.throughput;
  if (T) {
    L.push('**(a) Throughput** (SMTP load, smtp-source 2k:10:many, receiver answering at once)', '');
    L.push('| load msgs | load s | SMTP accepted msg/s | CPU ms/msg | fsyncs/msg | events | events/msg | events written/s | received ev/s during load | ev/s until caught up | lag at load end (events) | max lag | caught up after load s | duplicates | bad signatures |');
    L.push('|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|');
    L.push(`| ${T.smtp.messages}${T.smtp.error ? ' ⚠' : ''} | ${f(T.smtp.acceptSeconds, 1)} | ${f(T.smtp.acceptedPerSec)} | ${f(T.smtp.cpuMsPerMsg, 2)} | ${f(T.smtp.fsyncsPerMsg, 2)} | ${T.events} | ${f(T.eventsPerMessage, 2)} | ${f(T.eventsWrittenPerSec)} | **${f(T.receivedDuringLoadPerSec)}** | ${f(T.eventsPerSec)} | ${T.lagAtLoadEndEvents ?? '–'} | ${T.maxLagEvents} | ${T.caughtUp ? f(T.drainAfterLoadSeconds, 1) : 'not within the limit'} | ${T.duplicates} | ${T.badSignatures} |`);
    L.push('', 'CPU and fsyncs per message: Postline\'s, for the SMTP load with the endpoint configured (the dispatcher runs in the same process). Load: `' + T.smtp.command + '`.');
    L.push('', `Lag over time (s: events behind): ${thin(T.samples, 12).map((s) => `${f(s.t, 1)}: ${s.backlog ?? '–'}`).join(', ')}.`, '');
  }
  const C = W.catchup;
  if (C) {
    L.push(`**(b) Catch-up** after a ${C.outageSeconds} s outage (receiver answering 503) at a paced ~${C.paced.targetRate} msg/s over SMTP; the load stops when the endpoint comes back.`, '');
    L.push('| outage s | paced msg/s | messages | 503 answers | backlog at recovery (events) | events to catch up | first 2xx after s | catch-up s | ev/s over the catch-up | ev/s from the first 2xx | missing | duplicates | bad signatures |');
    L.push('|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|');
    L.push(`| ${C.outageSeconds} | ${f(C.paced.ratePerSec)} | ${C.paced.sent}${C.paced.failed ? ` (${C.paced.failed} failed)` : ''} | ${C.refusedDuringOutage} | ${C.backlogAtUp ?? '–'} | ${C.eventsToCatchUp} | ${f(C.firstAckAfterUpSeconds, 1)} | **${C.caughtUp ? f(C.catchupSeconds, 1) : 'not within the limit'}** | ${f(C.catchupEventsPerSec)} | ${f(C.sendingEventsPerSec)} | ${C.missing ?? '–'} | ${C.duplicates} | ${C.badSignatures} |`);
    L.push('', 'First 2xx after: the wait for the dispatcher\'s next retry (its default backoff: 5 s doubling up to 10 min, ±20 % jitter), part of the catch-up time. ' +
      `\`webhooks status --json\` at recovery: ${statusLine(C.statusAtRecovery)}; at the end: ${statusLine(C.statusAtEnd)}.`, '');
    L.push(`Backlog over time (s: events behind): ${thin(C.samples, 14).map((s) => `${f(s.t, 0)}: ${s.backlog ?? '–'}${s.phase && s.phase !== 'down' ? ` (${s.phase})` : ''}`).join(', ')}.`, '');
    L.push(`Paced client: ${C.pacedCommand}; at most ${f(C.paced.maxBehindMs)} ms behind its schedule.`, '');
  }
  if (W.deviation) deviationTable(L, 'Postline, this section only', [W.deviation]);
  if (W.config) L.push('```yaml', W.config.trim(), '```', '');
}

/** At most n samples, evenly spread, always keeping the first, the last and the tagged ones. */
function thin(samples = [], n) {
  if (samples.length <= n) return samples;
  const step = (samples.length - 1) / (n - 1);
  const keep = new Set(Array.from({ length: n }, (_, i) => Math.round(i * step)));
  return samples.filter((s, i) => keep.has(i) || s.phase);
}

function statusLine(st) {
  const e = st?.endpoints?.[0];
  if (!e) return st?.error ? `(${st.error})` : '–';
  return `${e.state}, cursor ${e.cursor ?? '–'}, backlog ${e.backlog ?? '–'}, failed attempts ${e.attempts}${e.lastError ? `, last error "${String(e.lastError).slice(0, 60)}"` : ''}`;
}

function deviationTable(L, title, devs) {
  L.push(`**${title}**`, '', '| setting | bench value | default | why |', '|---|---|---|---|');
  for (const d of devs) L.push(`| \`${d.key}\` | ${String(d.value).replace(/\|/g, '\\|')} | ${String(d.default).replace(/\|/g, '\\|')} | ${d.reason} |`);
  L.push('');
}

export function renderMarkdown(res) {
  const M = res.machine;
  const L = [];
  const smoke = /smoke/i.test(res.label ?? '');
  L.push(`# Postline vs Postfix — ${res.profile} profile${res.label ? ` (${res.label})` : ''}, ${res.date.slice(0, 16).replace('T', ' ')} UTC`, '');
  if (smoke) L.push('> **SMOKE RUN**: tiny durations and counts, to show that every section renders. These numbers measure nothing; do not quote them.', '');
  L.push(`Postline commit \`${M.gitCommit?.slice(0, 12) ?? '?'}\`${M.gitDirty ? ' (src/ had uncommitted changes)' : ''}. Command: \`${res.commands.bench}\`. ` +
    `${res.reps} rep(s) per point, each server's runs sized from a warm-up run's rate to last ≥ ${res.options.minSeconds} s, servers alternating (Postline, Postfix, ceiling) per rep. Whole run ${f(res.durationSeconds)} s` +
    ` (${Object.entries(res.sections).map(([k, v]) => `${k} ${f(v.seconds)} s`).join(', ')}).`, '');

  L.push('## Machine', '');
  L.push(`- ${M.cores} cores (${M.cpuModel}), ${f(M.memoryBytes / 2 ** 30, 1)} GiB RAM, Linux ${M.kernel}, Node ${M.node}, Postfix ${M.postfix}`);
  L.push(`- spool/queue filesystem: ${M.tmpFilesystem} (device ${M.disk ?? '?'}); open files limit ${M.openFilesLimit}`);
  const fl = M.fsyncLatency;
  if (fl) L.push(`- fsync latency (${fl.command}): median **${f(fl.medianMs, 3)} ms**, p90 ${f(fl.p90Ms, 3)}, p99 ${f(fl.p99Ms, 3)} ms over ${fl.samples} calls`);
  if (M.dd) L.push(`- durable write bandwidth: \`${M.dd.dsync.command}\` **${f(M.dd.dsync.mbPerSec)} MB/s**; \`${M.dd.fdatasync.command}\` ${f(M.dd.fdatasync.mbPerSec)} MB/s`);
  const busy = finite([...res.runs, ...res.sustain].map((r) => r.machineBusyPct));
  L.push(`- load average at start: ${M.loadavgAtStart}; whole machine busy during runs: median ${f(median(busy))}%, max ${f(busy[busy.length - 1])}% (per run in the JSON)`);
  L.push(`- **${M.sharedMachine}**: every figure includes that contention, for both servers alike.`, '');

  L.push('## Deviations from defaults', '');
  L.push('Each server runs at its defaults except for the settings below. Postline is at log level info, its default; Postfix logs at its default verbosity.', '');
  deviationTable(L, 'Postline (all runs)', res.commands.postline.deviations);
  deviationTable(L, 'Postfix (all runs; base: Debian\'s main.cf pieces and master.cf)', res.commands.postfix.deviations);
  deviationTable(L, 'Memory tests only', [...res.commands.postline.memtestOverrides.map((d) => ({ ...d, key: 'Postline ' + d.key })), ...res.commands.postfix.memtestOverrides.map((d) => ({ ...d, key: 'Postfix ' + d.key }))]);

  if (res.sections.grid) {
    L.push('## Grid', '');
    for (const d of Object.keys(res.summary)) gridTables(L, res, d);
    if (res.discardedRuns?.length) L.push(`${res.discardedRuns.length} run(s) ended under the minimum duration (the server got faster after its warm-up) and were run again with a larger count; the short ones are in the JSON \`discardedRuns\`.`, '');
  }

  if (res.sustain?.length) {
    L.push(`## Delivery keeps up (sustain, disk ${res.sections.sustain.disk})`, '');
    L.push('One long run per server and point. Delivered = sink count; queue depth sampled every second (Postline: `SELECT count(*) FROM messages` on a read-only connection; Postfix: files under maildrop/incoming/active/deferred/hold). Steady figures: least-squares slope over the load after its first 20 %.', '');
    L.push('| point | server | load s | accepted msg/s | delivered msg/s during load | delivered % | steady delivered msg/s (%) | queue depth slope msg/s | max depth | drain after load s |');
    L.push('|---|---|--:|--:|--:|--:|--:|--:|--:|--:|');
    for (const r of res.sustain) {
      const m = r.sustain;
      L.push(`| ${r.point} | ${r.server}${r.error ? ' ⚠' : ''} | ${f(m.seconds, 1)} | ${f(m.acceptedPerSec)} | ${f(m.deliveredPerSec)} | ${f(m.deliveredPct)}% | ${f(m.steadyDeliveredPerSec)} (${f(m.steadyDeliveredPct)}%) | ${f(m.queueSlopePerSec, 1)} | ${m.maxDepth ?? '–'} | ${f(m.drainSeconds, 1)} |`);
    }
    L.push('');
  }

  if (res.api) apiTables(L, res);
  if (res.webhooks) webhookTables(L, res);

  L.push('## Calibration of the fsync counter', '');
  const st = M.shimSelfTest;
  if (st) {
    L.push(`Shim self-test (${st.procs} processes × ${st.calls} × (4 KB write + fdatasync), +${st.delayUs / 1000} ms per call, all starting at the same instant; span from the first start to the last end): ` +
      `parallel ${f(st.parallel.seconds, 2)} s (sleep alone ≥ ${f(st.expectParallelS, 2)} s), serialized ${f(st.serialized.seconds, 2)} s (sleep alone ≥ ${f(st.expectSerializedS, 2)} s).`, '');
  }
  if (res.sections.calibration) {
    L.push('Untimed runs with the shim counting and `strace -f -c` attached to every process of the server; disk flushes = the device\'s flush counter in /proc/diskstats, machine-wide (other processes add to it; ext4 may merge concurrent fsyncs into one journal commit).', '');
    L.push('| point | server | messages | shim calls | strace calls | shim by call | strace by call | disk flushes |', '|---|---|--:|--:|--:|---|---|--:|');
    for (const c of res.sections.calibration.runs) {
      L.push(`| ${c.point} | ${c.server} | ${c.messages} | ${c.shim.total} | ${c.strace.total}${c.strace.error ? ' (' + c.strace.error.replace(/\|/g, '/').slice(0, 80) + ')' : ''} | ${Object.entries(c.shim.byCall).map(([k, v]) => `${k} ${v}`).join(', ')} | ${Object.entries(c.strace.byCall).map(([k, v]) => `${k} ${v}`).join(', ')} | ${c.disk?.flushes ?? '–'} |`);
    }
    L.push('');
  } else L.push('Not run this time (`--calibrate`).', '');
  L.push('Not caught by the shim (nor by strace -e fsync,fdatasync): writes to files opened with O_SYNC/O_DSYNC and io_uring fsyncs; neither server uses them (Node 20\'s libuv runs fs calls on its thread pool by default).', '');

  const memtests = res.memtests;
  if (memtests && Object.keys(memtests).length) {
    L.push('## Memory', '');
    L.push('| test | server | before | during (peak) | growth | notes |', '|---|---|--:|--:|--:|---|');
    for (const [name, t] of Object.entries(memtests)) {
      for (const g of [t.big10, t.big].filter(Boolean)) {
        L.push(`| ${f(g.bytes / MiB)} MB message streamed through | ${name} | ${mb(g.rssBefore)} MB | ${mb(g.rssPeak)} MB | ${f(g.rssGrowth / MiB, 1)} MB RSS (PSS ${f(g.pssGrowth / MiB, 1)} MB) | ` +
          `accepted after ${f(g.acceptMs / 1000, 1)} s, at the sink after ${f(g.e2eMs / 1000, 1)} s${g.error ? '; ERROR ' + g.error : ''} |`);
      }
      if (t.idle) {
        const i = t.idle;
        L.push(`| ${i.requested} idle connections | ${name} | ${mb(i.rssBefore)} MB | ${mb(i.rssHeld)} MB | ${f((i.rssHeld - i.rssBefore) / MiB, 1)} MB | ` +
          `${i.greeted} greeted, ${i.failed} failed${i.failed ? ' ' + JSON.stringify(i.errors) : ''}; opened in ${f(i.openMs / 1000, 1)} s; ${mb(i.rssAfterClose)} MB after closing |`);
      }
    }
    L.push('');
  }

  L.push('## Commands', '');
  L.push('```sh', res.commands.bench, '```', '');
  L.push('Load per run (smtp-source; -m is each server\'s own count from its warm-up rate; the JSON has every run\'s command):', '', '```sh');
  const seen = new Set();
  for (const r of [...res.runs, ...res.sustain]) {
    const k = r.disk + r.point + r.server;
    if (seen.has(k)) continue;
    seen.add(k);
    L.push(`# ${r.disk} ${r.point} ${r.server}`, r.command);
  }
  L.push('```', '');
  L.push(`Shim: \`${res.commands.shim}\`, loaded with LD_PRELOAD into both servers (Postfix: through import_environment).`, '');
  L.push('Sinks (counting with `-c`, no dump):', '', '```sh', ...Object.values(res.commands.sink), '```', '');
  L.push(`Ceiling: \`${res.commands.ceiling.start}\` (bench/lib/ceiling.mjs: accept and discard, no queue).`, '');
  L.push('Postline:', '', '```sh', res.commands.postline.start, '```', '', '```yaml', res.commands.postline.config.trim(), '```', '');
  L.push('Postfix (private instance):', '', '```sh', res.commands.postfix.start, '```', '', 'main.cf:', '', '```', res.commands.postfix.mainCf.trim(), '```', '',
    'master.cf:', '', '```', res.commands.postfix.masterCf.trim(), '```', '');
  L.push(`Probe: ${res.commands.probe}.`, '');
  return L.join('\n');
}
