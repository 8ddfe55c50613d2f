// Summary (medians, ratios, targets) and the Markdown report.
import { pointKey, sizeLabel } from './profiles.mjs';

const MiB = 1024 * 1024;
const METRICS = ['acceptedPerSec', 'e2ePerSec', 'p50Ms', 'p99Ms', 'cpuMsPerMsg', 'peakRssBytes', 'peakPssBytes'];

export function median(xs) {
  const v = xs.filter((x) => x !== null && x !== undefined && Number.isFinite(x)).sort((a, b) => a - b);
  if (!v.length) return null;
  const m = Math.floor(v.length / 2);
  return v.length % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
}

/** Per point: each server's median per metric, and the median of the per-rep Postline/Postfix ratios. */
export function summarize(points, runs, servers) {
  const perPoint = {};
  for (const p of points) {
    const key = pointKey(p);
    const mine = runs.filter((r) => r.point === key);
    const s = { point: key, size: p.size, sessions: p.sessions, reuse: p.reuse, count: p.count, servers: {}, ratio: {} };
    for (const name of servers) {
      const rs = mine.filter((r) => r.server === name);
      s.servers[name] = { runs: rs.length, errors: rs.filter((r) => r.error).length };
      for (const m of METRICS) s.servers[name][m] = median(rs.map((r) => r[m]));
    }
    if (servers.includes('postline') && servers.includes('postfix')) {
      for (const m of METRICS) {
        const ratios = [];
        const reps = new Set(mine.map((r) => r.rep));
        for (const rep of reps) {
          const a = mine.find((r) => r.rep === rep && r.server === 'postline');
          const b = mine.find((r) => r.rep === rep && r.server === 'postfix');
          if (a && b && a[m] != null && b[m]) ratios.push(a[m] / b[m]);
        }
        s.ratio[m] = median(ratios);
      }
    }
    perPoint[key] = s;
  }
  const targetKeys = Object.values(perPoint)
    .filter((s) => (s.size === 2048 || s.size === 50 * 1024) && (s.sessions === 10 || s.sessions === 50)).map((s) => s.point);
  const ratioSet = (m) => targetKeys.map((k) => perPoint[k].ratio[m]).filter((x) => x != null);
  const allRatios = (m) => Object.values(perPoint).map((s) => s.ratio[m]).filter((x) => x != null);
  const target = (m, ok) => {
    const rs = ratioSet(m);
    return { points: targetKeys, ratios: Object.fromEntries(targetKeys.map((k) => [k, perPoint[k].ratio[m]])),
      median: median(rs), min: rs.length ? Math.min(...rs) : null, max: rs.length ? Math.max(...rs) : null,
      met: rs.length === targetKeys.length && rs.length > 0 ? rs.every(ok) : null };
  };
  return {
    perPoint,
    medianRatioAllPoints: Object.fromEntries(METRICS.map((m) => [m, median(allRatios(m))])),
    targets: {
      acceptance2x: target('acceptedPerSec', (r) => r >= 2),
      endToEnd2x: target('e2ePerSec', (r) => r >= 2),
      cpuHalf: target('cpuMsPerMsg', (r) => r <= 0.5),
    },
  };
}

const f = (v, d = 0) => (v === null || v === undefined || !Number.isFinite(v) ? '–' : Number(v).toFixed(d));
const mb = (b) => f(b / MiB, 1);
const yes = (m) => (m === null ? 'not measured' : m ? '**met**' : '**not met**');

export function renderMarkdown(res) {
  const { summary: S, machine: M, memtests } = res;
  const both = res.runs.some((r) => r.server === 'postfix') && res.runs.some((r) => r.server === 'postline');
  const L = [];
  L.push(`# Postline vs Postfix — ${res.profile} profile, ${res.date.slice(0, 16).replace('T', ' ')} UTC`, '');
  L.push(`Postline commit \`${M.gitCommit?.slice(0, 12) ?? '?'}\`${M.gitDirty ? ' (src/ had uncommitted changes)' : ''}; ` +
    `${res.reps} rep(s) per point, alternating Postline (A) and Postfix (B): A B A B; run took ${f(res.durationSeconds)} s.`, '');
  L.push('## Machine', '');
  L.push(`- ${M.cores} cores (${M.cpuModel}), ${f(M.memoryBytes / 2 ** 30, 1)} GiB RAM, Linux ${M.kernel}, Node ${M.node}, Postfix ${M.postfix}`);
  L.push(`- spool/queue filesystem: ${M.tmpFilesystem}; open files limit ${M.openFilesLimit}`);
  const busy = res.runs.map((r) => r.machineBusyPct).filter((x) => x != null).sort((a, b) => a - b);
  L.push(`- load average at start: ${M.loadavgAtStart}; whole machine busy during runs: median ${f(busy[Math.floor(busy.length / 2)])}%, max ${f(busy[busy.length - 1])}% (per run in the JSON, with the load average)`);
  L.push(`- **${M.sharedMachine}**: every figure includes that contention, for both servers alike.`, '');

  L.push('## Throughput, latency, CPU, memory', '');
  L.push('Per point: median over reps; *ratio* = median of the per-rep Postline/Postfix ratios (higher is better for msg/s, lower for ms and MB). ' +
    '`many` = smtp-source `-d` (all messages over the same connections), `one` = a new connection per message. ' +
    'Latency = probe session beside smtp-source (end of data → 250). CPU = all of the server\'s processes (utime+stime incl. reaped children) from the first connection until the sink had every message. ' +
    'RSS = peak sum over the server\'s processes (Postfix: PSS in parentheses, since its processes share pages).', '');
  L.push('| point (size:sessions:conn) | msgs | accepted msg/s PL / PF | ratio | end-to-end msg/s PL / PF | ratio | p50 ms PL / PF | p99 ms PL / PF | CPU ms/msg PL / PF | ratio | peak RSS MB PL / PF (PSS) |');
  L.push('|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|');
  for (const s of Object.values(S.perPoint)) {
    const a = s.servers.postline ?? {}, b = s.servers.postfix ?? {};
    const err = (x) => (x?.errors ? ` ⚠${x.errors}` : '');
    L.push(`| ${s.point} | ${s.count} | ${f(a.acceptedPerSec)}${err(a)} / ${f(b.acceptedPerSec)}${err(b)} | ${f(s.ratio.acceptedPerSec, 2)} ` +
      `| ${f(a.e2ePerSec)} / ${f(b.e2ePerSec)} | ${f(s.ratio.e2ePerSec, 2)} ` +
      `| ${f(a.p50Ms, 1)} / ${f(b.p50Ms, 1)} | ${f(a.p99Ms, 1)} / ${f(b.p99Ms, 1)} ` +
      `| ${f(a.cpuMsPerMsg, 2)} / ${f(b.cpuMsPerMsg, 2)} | ${f(s.ratio.cpuMsPerMsg, 2)} ` +
      `| ${mb(a.peakRssBytes)} / ${mb(b.peakRssBytes)} (${mb(b.peakPssBytes)}) |`);
  }
  if (both) {
    const m = S.medianRatioAllPoints;
    L.push(`| **median ratio, all points** | | | **${f(m.acceptedPerSec, 2)}** | | **${f(m.e2ePerSec, 2)}** | ${f(m.p50Ms, 2)} | ${f(m.p99Ms, 2)} | | **${f(m.cpuMsPerMsg, 2)}** | ${f(m.peakRssBytes, 2)} |`);
  }
  L.push('', '⚠n: n runs of that server failed at that point (see the JSON `runs[].error`); failed runs are left out of the medians.', '');

  if (memtests && Object.keys(memtests).length) {
    L.push('## Memory', '');
    L.push('| test | server | before | during (peak) | growth | notes |', '|---|---|--:|--:|--:|---|');
    for (const [name, t] of Object.entries(memtests)) {
      for (const g of [t.big10, t.big].filter(Boolean)) {
        L.push(`| ${g.bytes / MiB} MB message streamed through | ${name} | ${mb(g.rssBefore)} MB | ${mb(g.rssPeak)} MB | ${mb(g.rssGrowth)} MB RSS (PSS ${mb(g.pssGrowth)} MB) | ` +
          `accepted after ${f(g.acceptMs / 1000, 1)} s, at the sink after ${f(g.e2eMs / 1000, 1)} s${g.error ? '; ERROR ' + g.error : ''} |`);
      }
      if (t.idle) {
        const i = t.idle;
        L.push(`| ${i.requested} idle connections | ${name} | ${mb(i.rssBefore)} MB | ${mb(i.rssHeld)} MB | ${mb(i.rssHeld - i.rssBefore)} MB | ` +
          `${i.greeted} greeted, ${i.failed} failed${i.failed ? ' ' + JSON.stringify(i.errors) : ''}; opened in ${f(i.openMs / 1000, 1)} s; ${mb(i.rssAfterClose)} MB after closing |`);
      }
    }
    L.push('');
  }

  L.push('## Targets (issue 4)', '');
  if (both) {
    const T = S.targets;
    const list = (t) => Object.entries(t.ratios).map(([k, v]) => `${k} ${f(v, 2)}`).join(', ');
    L.push(`- Acceptance ≥ 2x Postfix at 2k/50k × 10/50 sessions: ${yes(T.acceptance2x.met)} — median ratio ${f(T.acceptance2x.median, 2)}, min ${f(T.acceptance2x.min, 2)} (${list(T.acceptance2x)})`);
    L.push(`- End to end ≥ 2x Postfix at the same points: ${yes(T.endToEnd2x.met)} — median ratio ${f(T.endToEnd2x.median, 2)}, min ${f(T.endToEnd2x.min, 2)} (${list(T.endToEnd2x)})`);
    L.push(`- CPU per message ≤ 0.5x Postfix's (same points): ${yes(T.cpuHalf.met)} — median ratio ${f(T.cpuHalf.median, 2)}, max ${f(T.cpuHalf.max, 2)} (${list(T.cpuHalf)})`);
  }
  const idle = memtests?.postline?.idle, big = memtests?.postline?.big;
  if (idle) L.push(`- 10,000 idle connections under 300 MB RSS: ${yes(idle.greeted >= 10000 ? idle.rssHeld < 300 * MiB : null)} — ${mb(idle.rssHeld)} MB with ${idle.greeted} connections`);
  if (big) L.push(`- 100 MB message adds under 32 MB RSS: ${yes(big.error ? null : big.rssGrowth < 32 * MiB)} — +${mb(big.rssGrowth)} MB (${mb(big.rssBefore)} → ${mb(big.rssPeak)} MB)`);
  L.push('');

  L.push('## Commands', '');
  L.push('```sh', res.commands.bench, '```', '');
  L.push('Load per run (one line per point; the same command against each server\'s port):', '', '```sh');
  const seen = new Set();
  for (const r of res.runs) {
    const k = r.point + r.server;
    if (seen.has(k)) continue;
    seen.add(k);
    L.push(`# ${r.point} ${r.server}`, r.command);
  }
  L.push('```', '');
  L.push('Sinks (counting with `-c`, no dump):', '', '```sh', ...Object.values(res.commands.sink), '```', '');
  if (res.commands.postline) L.push('Postline:', '', '```sh', res.commands.postline.start, '```', '', '```yaml', res.commands.postline.config.trim(), '```', '');
  if (res.commands.postfix && both) {
    L.push('Postfix (private instance):', '', '```sh', res.commands.postfix.start, '```', '', 'main.cf:', '', '```', res.commands.postfix.mainCf.trim(), '```', '',
      'master.cf:', '', '```', res.commands.postfix.masterCf.trim(), '```', '');
  }
  L.push(`Probe: ${res.commands.probe}. Pacing per size (ms): ${[...new Map(res.points.map((p) => [sizeLabel(p.size), p.probeIntervalMs])).entries()].map(([k, v]) => `${k} ${v}`).join(', ')}.`, '');
  return L.join('\n');
}
