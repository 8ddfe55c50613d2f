/**
 * A small data directory of its own for the disk-full scenario: a loop-mounted ext4 image made with
 * `mkfs.ext4 -m 0` (no root reserve), when this machine lets us mount; otherwise a plain temp
 * directory plus Postline's fault layer (POSTLINE_FAULT_DISK, src/spool/fault-store.ts). `method`
 * says which. `fill()` writes a filler file until the free space is below a target (or ENOSPC).
 */
import { execFileSync } from 'node:child_process';
import { closeSync, mkdirSync, mkdtempSync, openSync, rmSync, statfsSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export class SmallDisk {
  readonly base: string;
  readonly mount: string;
  readonly method: 'loop-ext4' | 'fault-layer';
  /** Control file of the fault layer (fault-layer method only). */
  readonly faultFile: string;
  private mounted = false;
  private fillers = 0;

  constructor(sizeMiB = 64) {
    this.base = mkdtempSync(join(tmpdir(), 'postline-disk-'));
    this.mount = join(this.base, 'mnt');
    this.faultFile = join(this.base, 'fault');
    mkdirSync(this.mount);
    const img = join(this.base, 'disk.img');
    try {
      if (process.getuid?.() !== 0) throw new Error('not root');
      if (process.env.POSTLINE_TORTURE_NO_MOUNT) throw new Error('mount disabled by POSTLINE_TORTURE_NO_MOUNT');
      execFileSync('truncate', ['-s', `${sizeMiB}M`, img]);
      execFileSync('mkfs.ext4', ['-q', '-m', '0', img], { stdio: 'ignore' });
      execFileSync('mount', ['-o', 'loop', img, this.mount], { stdio: 'ignore', timeout: 20_000 });
      this.mounted = true;
      this.method = 'loop-ext4';
    } catch {
      this.method = 'fault-layer';
      writeFileSync(this.faultFile, 'ok');
    }
  }

  /** Environment for Postline (the fault layer's switch when not mounted). */
  env(): Record<string, string> {
    return this.method === 'fault-layer' ? { POSTLINE_FAULT_DISK: this.faultFile } : {};
  }

  free(): number {
    const s = statfsSync(this.mount);
    return Number(s.bavail) * Number(s.bsize);
  }

  /** Fills until at most `leaveBytes` are free (0: until ENOSPC). Fault layer: sets "low" or "full". */
  fill(leaveBytes: number): void {
    if (this.method === 'fault-layer') {
      writeFileSync(this.faultFile, leaveBytes > 0 ? 'low' : 'full');
      return;
    }
    const fd = openSync(join(this.mount, `filler-${this.fillers++}`), 'w');
    try {
      for (const chunk of [1 << 20, 64 << 10, 4096, 512]) {
        const buf = Buffer.alloc(chunk, 0x61);
        for (let i = 0; i < 100_000; i++) {
          if (leaveBytes > 0 && this.free() - chunk < leaveBytes) break;
          try { writeSync(fd, buf); } catch { break; } // ENOSPC
        }
        if (leaveBytes > 0) break;
      }
    } finally {
      closeSync(fd);
    }
  }

  /** Removes every filler (space returns). */
  release(): void {
    if (this.method === 'fault-layer') {
      writeFileSync(this.faultFile, 'ok');
      return;
    }
    for (let i = 0; i < this.fillers; i++) rmSync(join(this.mount, `filler-${i}`), { force: true });
    this.fillers = 0;
  }

  /** Unmounts (lazily if busy) and removes everything. Never throws. */
  cleanup(): void {
    if (this.mounted) {
      try { execFileSync('umount', [this.mount], { stdio: 'ignore', timeout: 20_000 }); } catch {
        try { execFileSync('umount', ['-l', this.mount], { stdio: 'ignore', timeout: 20_000 }); } catch { /* left for the OS */ }
      }
      this.mounted = false;
    }
    rmSync(this.base, { recursive: true, force: true });
  }
}
