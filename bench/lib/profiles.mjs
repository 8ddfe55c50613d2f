// Bench profiles. A point is a message size, a number of concurrent smtp-source sessions and
// whether each connection carries one message or many (-d). `count` is the number of messages
// smtp-source sends per run, sized so one run lasts a few seconds on a 2-core machine.
const KB = 1024;
const MB = 1024 * 1024;

// Probe pacing by size: light next to the load, yet enough samples for a p99.
const probeInterval = { [2 * KB]: 20, [50 * KB]: 40, [MB]: 150 };

function point(size, sessions, reuse, count) {
  return { size, sessions, reuse, count, probeIntervalMs: probeInterval[size] };
}

// Full profile counts: [size][sessions] for many-per-connection; one-per-connection uses `oneFactor` of it.
const fullCounts = {
  [2 * KB]: { 1: 600, 10: 1500, 50: 2000 },
  [50 * KB]: { 1: 600, 10: 1500, 50: 1500 },
  [MB]: { 1: 150, 10: 300, 50: 400 },
};
const oneFactor = 0.6;

const full = [];
for (const size of [2 * KB, 50 * KB, MB]) {
  for (const sessions of [1, 10, 50]) {
    for (const reuse of [true, false]) {
      const c = fullCounts[size][sessions];
      full.push(point(size, sessions, reuse, Math.round(reuse ? c : c * oneFactor)));
    }
  }
}

export const PROFILES = {
  quick: {
    reps: 1, warmup: 300, idleConnections: 10000, bigMessageBytes: 100 * MB,
    points: [
      point(2 * KB, 10, true, 1000),
      point(2 * KB, 50, true, 1500),
      point(2 * KB, 50, false, 800),
      point(2 * KB, 10, false, 600),
      point(50 * KB, 10, true, 600),
      point(50 * KB, 50, true, 600),
      point(MB, 10, true, 100),
    ],
  },
  full: { reps: 3, warmup: 500, idleConnections: 10000, bigMessageBytes: 100 * MB, points: full },
};

export function sizeLabel(size) { return size >= MB ? `${size / MB}M` : `${size / KB}k`; }
export function pointKey(p) { return `${sizeLabel(p.size)}:${p.sessions}:${p.reuse ? 'many' : 'one'}`; }
/** "2k:50:many,50k:10:one" -> Set of keys */
export function parsePoints(s) { return new Set(s.split(',').map((x) => x.trim()).filter(Boolean)); }
