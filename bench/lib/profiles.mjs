// Bench profiles. A point is a message size, a number of concurrent smtp-source sessions and
// whether each connection carries one message or many (-d). Message counts are not fixed: each
// server's count at each point comes from a warm-up run's rate, so that a measured run lasts at
// least --min-seconds (see load.mjs).
const KB = 1024;
const MB = 1024 * 1024;

// Probe pacing by size: light next to the load, yet enough samples for a p99.
const probeInterval = { [2 * KB]: 20, [50 * KB]: 40, [MB]: 150 };

export function point(size, sessions, reuse) {
  return { size, sessions, reuse, probeIntervalMs: probeInterval[size] ?? 50 };
}

const full = [];
for (const size of [2 * KB, 50 * KB, MB]) {
  for (const sessions of [1, 10, 50]) {
    for (const reuse of [true, false]) full.push(point(size, sessions, reuse));
  }
}

export const PROFILES = {
  quick: {
    reps: 1, idleConnections: 10000, bigMessageBytes: 100 * MB,
    points: [point(2 * KB, 10, true), point(2 * KB, 50, true), point(2 * KB, 10, false), point(50 * KB, 50, true), point(MB, 10, true)],
  },
  full: { reps: 3, idleConnections: 10000, bigMessageBytes: 100 * MB, points: full },
};

/** Sustain section (delivery keeps up): 50 sessions, many per connection, 2 KB and 50 KB. */
export const SUSTAIN_POINTS = [point(2 * KB, 50, true), point(50 * KB, 50, true)];

export function sizeLabel(size) { return size >= MB ? `${size / MB}M` : `${size / KB}k`; }
export function pointKey(p) { return `${sizeLabel(p.size)}:${p.sessions}:${p.reuse ? 'many' : 'one'}`; }

/** "2k:50:many,50k:10:one" -> points (any size in k/M, any session count). */
export function parsePoints(s) {
  return s.split(',').map((x) => x.trim()).filter(Boolean).map((k) => {
    const m = /^(\d+)([kM]):(\d+):(many|one)$/.exec(k);
    if (!m) throw new Error(`bad point ${k}: want SIZE:SESSIONS:many|one, e.g. 2k:50:many`);
    return point(Number(m[1]) * (m[2] === 'M' ? MB : KB), Number(m[3]), m[4] === 'many');
  });
}
