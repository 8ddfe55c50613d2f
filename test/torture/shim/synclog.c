/*
 * synclog: an LD_PRELOAD shim for the power-loss test (test/torture/power-loss.test.ts). It logs
 * what a power loss could not take back: after each successful fsync / fdatasync (and
 * sync_file_range with SYNC_FILE_RANGE_WAIT_AFTER over the whole file) of a file, the file's
 * inode and size; after each fsync of a directory, the directory and the entries it held. It
 * also logs every write and ftruncate to a regular file, so the test knows which bytes came
 * after a file's last sync. The test replays the log onto the data directory after a SIGKILL.
 *
 * Environment (read once, at load):
 *   SYNCLOG_FILE  the log (opened O_APPEND; one write() per line or per run of whole lines)
 *   SYNCLOG_ROOT  only paths under this directory are logged (default: every path)
 *
 * Lines ("<seq>" is one counter per process, taken with an atomic add; it orders the lines,
 * which may reach the file out of order between threads; paths come from /proc/self/fd/N):
 *   P <pid>                          the process started logging
 *   S <seq> <ino> <size> <path>      file synced: its first <size> bytes are durable. seq and
 *                                    size are taken BEFORE the real call, so a write that ends
 *                                    while the sync runs counts as not covered (conservative)
 *   E <seq> <ino> <name>             an entry of the directory of the D line with the same seq,
 *                                    listed before the real call; ignored without that D line
 *   D <seq> <ino> -1 <path>          directory synced: the E entries of this seq are durable
 *   W <seq> <ino> <offset> <len> <path>   bytes written (seq taken after the write returned)
 *   T <seq> <ino> <length> <path>    file truncated (or extended) to <length>
 *   A <seq>                          sync() or syncfs() succeeded (not credited by the test:
 *                                    it knows no sizes for it; Postline calls neither)
 *   R <seq> <ino> <offset> <len> <path>  sync_file_range of part of a file (not credited)
 *
 * Thread-safe without locks: the counter is atomic, every buffer is on the stack, nothing is
 * allocated (dlsym runs once per wrapped function). The real functions come from dlsym(RTLD_NEXT);
 * the shim's own log writes are raw syscalls, so they never go through its own wrappers.
 *
 * Build: cc -O2 -shared -fPIC -o synclog.so synclog.c -ldl (the test does this at run time into
 * its temp dir; no binary is committed).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

static int log_fd = -1;
static char root[PATH_MAX];
static size_t root_len = 0;
static unsigned long long seq_counter = 0;

static unsigned long long next_seq(void) {
  return __atomic_add_fetch(&seq_counter, 1, __ATOMIC_SEQ_CST);
}

/* Appends n bytes of whole lines to the log (raw syscall: never our own write wrapper). */
static void log_raw(const char *buf, size_t n) {
  if (log_fd < 0 || n == 0) return;
  while (syscall(SYS_write, log_fd, buf, n) < 0 && errno == EINTR) { }
}

__attribute__((constructor)) static void synclog_init(void) {
  const char *file = getenv("SYNCLOG_FILE");
  if (!file || !*file) return;
  const char *r = getenv("SYNCLOG_ROOT");
  if (r && *r) {
    size_t n = strlen(r);
    while (n > 1 && r[n - 1] == '/') n--;
    if (n < sizeof root) { memcpy(root, r, n); root[n] = 0; root_len = n; }
  }
  int saved = errno;
  long fd = syscall(SYS_openat, AT_FDCWD, file, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
  log_fd = fd < 0 ? -1 : (int)fd;
  char line[64];
  int len = snprintf(line, sizeof line, "P %d\n", (int)getpid());
  if (len > 0) log_raw(line, (size_t)len);
  errno = saved;
}

/* The path of fd (from /proc/self/fd/N) when it is under SYNCLOG_ROOT; 0 otherwise. */
static int tracked_path(int fd, char *out, size_t size) {
  char link[64];
  snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
  ssize_t n = readlink(link, out, size - 1);
  if (n <= 0) return 0;
  out[n] = 0;
  if (root_len == 0) return 1;
  return strncmp(out, root, root_len) == 0 && (out[root_len] == '/' || out[root_len] == 0);
}

/* What the shim knows of a file: its identity is "<ino>-<birth time ns>" (an inode number alone is
 * reused by the next file at once; birth time 0 where the file system has none). */
struct ident {
  unsigned long long ino;
  unsigned long long btime;
  unsigned long long size;
  int reg;
  int dir;
};

/* statx of dirfd/name (name "" with AT_EMPTY_PATH: dirfd itself). @returns 0 on success. */
static int ident_of(int dirfd, const char *name, int flags, struct ident *out) {
  struct statx sx;
  if (statx(dirfd, name, flags, STATX_TYPE | STATX_SIZE | STATX_INO | STATX_BTIME, &sx) != 0) {
    struct stat st;
    int r = name[0] ? fstatat(dirfd, name, &st, flags & AT_SYMLINK_NOFOLLOW) : fstat(dirfd, &st);
    if (r != 0) return -1;
    out->ino = (unsigned long long)st.st_ino;
    out->btime = 0;
    out->size = (unsigned long long)st.st_size;
    out->reg = S_ISREG(st.st_mode);
    out->dir = S_ISDIR(st.st_mode);
    return 0;
  }
  out->ino = (unsigned long long)sx.stx_ino;
  out->btime = (sx.stx_mask & STATX_BTIME) ? (unsigned long long)sx.stx_btime.tv_sec * 1000000000ULL + sx.stx_btime.tv_nsec : 0;
  out->size = (unsigned long long)sx.stx_size;
  out->reg = S_ISREG(sx.stx_mode);
  out->dir = S_ISDIR(sx.stx_mode);
  return 0;
}

#define REAL(name) \
  static __typeof__(&name) real_##name##_ptr = NULL; \
  __typeof__(&name) real_##name = __atomic_load_n(&real_##name##_ptr, __ATOMIC_ACQUIRE); \
  if (!real_##name) { \
    real_##name = (__typeof__(&name))dlsym(RTLD_NEXT, #name); \
    __atomic_store_n(&real_##name##_ptr, real_##name, __ATOMIC_RELEASE); \
  }

/* After a successful write of len bytes at off (-1: where the fd's offset was before it). */
static void note_write(int fd, long long off, long long len) {
  if (log_fd < 0 || len <= 0) return;
  struct ident id;
  if (ident_of(fd, "", AT_EMPTY_PATH, &id) != 0 || !id.reg) return;
  char path[PATH_MAX];
  if (!tracked_path(fd, path, sizeof path)) return;
  if (off < 0) {
    off_t now = lseek(fd, 0, SEEK_CUR); /* after the write: its end (O_APPEND included) */
    off = now < 0 ? 0 : (long long)now - len;
  }
  unsigned long long seq = next_seq();
  char line[PATH_MAX + 128];
  int n = snprintf(line, sizeof line, "W %llu %llu-%llu %lld %lld %s\n", seq, id.ino, id.btime, off, len, path);
  if (n > 0 && (size_t)n < sizeof line) log_raw(line, (size_t)n);
}

struct linux_dirent64_ {
  uint64_t d_ino;
  int64_t d_off;
  unsigned short d_reclen;
  unsigned char d_type;
  char d_name[];
};

/* Logs the entries of directory fd as E lines of `seq` (a fresh fd, so the caller's offset stays). */
static void list_dir(int fd, unsigned long long seq) {
  long dfd = syscall(SYS_openat, fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0) return;
  char dents[16384];
  char out[8192];
  size_t used = 0;
  for (;;) {
    long nread = syscall(SYS_getdents64, (int)dfd, dents, sizeof dents);
    if (nread <= 0) break;
    for (long pos = 0; pos < nread;) {
      struct linux_dirent64_ *d = (struct linux_dirent64_ *)(dents + pos);
      pos += d->d_reclen;
      if (strcmp(d->d_name, ".") == 0 || strcmp(d->d_name, "..") == 0) continue;
      struct ident id;
      if (ident_of((int)dfd, d->d_name, AT_SYMLINK_NOFOLLOW, &id) != 0) continue; /* gone meanwhile */
      char line[NAME_MAX + 96];
      int n = snprintf(line, sizeof line, "E %llu %llu-%llu %s\n", seq, id.ino, id.btime, d->d_name);
      if (n <= 0 || (size_t)n >= sizeof line) continue;
      if (used + (size_t)n > sizeof out) { log_raw(out, used); used = 0; }
      memcpy(out + used, line, (size_t)n);
      used += (size_t)n;
    }
  }
  log_raw(out, used);
  syscall(SYS_close, (int)dfd);
}

/* What a sync of fd covers, taken before the real call. */
struct before {
  int tracked;
  int dir;
  unsigned long long seq;
  struct ident id;
  long long size;
  char path[PATH_MAX];
};

static void before_sync(int fd, struct before *b) {
  b->tracked = 0;
  if (log_fd < 0) return;
  if (ident_of(fd, "", AT_EMPTY_PATH, &b->id) != 0 || !(b->id.reg || b->id.dir)) return;
  if (!tracked_path(fd, b->path, sizeof b->path)) return;
  b->tracked = 1;
  b->dir = b->id.dir;
  b->seq = next_seq();
  /* The size after the seq: a write that ends between the two is in the size but has a later
   * seq, so the test still counts it as not covered. */
  struct ident again;
  b->size = ident_of(fd, "", AT_EMPTY_PATH, &again) == 0 ? (long long)again.size : (long long)b->id.size;
  if (b->dir) list_dir(fd, b->seq);
}

static void after_sync(const struct before *b, long long covered) {
  if (!b->tracked) return;
  char line[PATH_MAX + 128];
  int n = b->dir
    ? snprintf(line, sizeof line, "D %llu %llu-%llu -1 %s\n", b->seq, b->id.ino, b->id.btime, b->path)
    : snprintf(line, sizeof line, "S %llu %llu-%llu %lld %s\n", b->seq, b->id.ino, b->id.btime, covered, b->path);
  if (n > 0 && (size_t)n < sizeof line) log_raw(line, (size_t)n);
}

int fsync(int fd) {
  REAL(fsync);
  struct before b;
  before_sync(fd, &b);
  int r = real_fsync(fd);
  int saved = errno;
  if (r == 0) after_sync(&b, b.size);
  errno = saved;
  return r;
}

int fdatasync(int fd) {
  REAL(fdatasync);
  struct before b;
  before_sync(fd, &b);
  int r = real_fdatasync(fd);
  int saved = errno;
  if (r == 0) after_sync(&b, b.size);
  errno = saved;
  return r;
}

int sync_file_range(int fd, off64_t offset, off64_t nbytes, unsigned int flags) {
  REAL(sync_file_range);
  struct before b;
  int waits = (flags & SYNC_FILE_RANGE_WAIT_AFTER) != 0;
  if (waits) before_sync(fd, &b);
  else b.tracked = 0;
  int r = real_sync_file_range(fd, offset, nbytes, flags);
  int saved = errno;
  if (r == 0 && b.tracked && !b.dir) {
    if (offset == 0 && nbytes == 0) after_sync(&b, b.size);
    else {
      char line[PATH_MAX + 128];
      int n = snprintf(line, sizeof line, "R %llu %llu-%llu %lld %lld %s\n", b.seq, b.id.ino, b.id.btime, (long long)offset, (long long)nbytes, b.path);
      if (n > 0 && (size_t)n < sizeof line) log_raw(line, (size_t)n);
    }
  }
  errno = saved;
  return r;
}

static void note_global(void) {
  if (log_fd < 0) return;
  char line[64];
  int n = snprintf(line, sizeof line, "A %llu\n", next_seq());
  if (n > 0) log_raw(line, (size_t)n);
}

int syncfs(int fd) {
  REAL(syncfs);
  int r = real_syncfs(fd);
  int saved = errno;
  if (r == 0) note_global();
  errno = saved;
  return r;
}

void sync(void) {
  REAL(sync);
  real_sync();
  int saved = errno;
  note_global();
  errno = saved;
}

ssize_t write(int fd, const void *buf, size_t count) {
  REAL(write);
  ssize_t r = real_write(fd, buf, count);
  int saved = errno;
  if (r > 0) note_write(fd, -1, r);
  errno = saved;
  return r;
}

ssize_t pwrite(int fd, const void *buf, size_t count, off_t off) {
  REAL(pwrite);
  ssize_t r = real_pwrite(fd, buf, count, off);
  int saved = errno;
  if (r > 0) note_write(fd, (long long)off, r);
  errno = saved;
  return r;
}

ssize_t pwrite64(int fd, const void *buf, size_t count, off64_t off) {
  REAL(pwrite64);
  ssize_t r = real_pwrite64(fd, buf, count, off);
  int saved = errno;
  if (r > 0) note_write(fd, (long long)off, r);
  errno = saved;
  return r;
}

ssize_t writev(int fd, const struct iovec *iov, int n) {
  REAL(writev);
  ssize_t r = real_writev(fd, iov, n);
  int saved = errno;
  if (r > 0) note_write(fd, -1, r);
  errno = saved;
  return r;
}

ssize_t pwritev(int fd, const struct iovec *iov, int n, off_t off) {
  REAL(pwritev);
  ssize_t r = real_pwritev(fd, iov, n, off);
  int saved = errno;
  if (r > 0) note_write(fd, (long long)off, r);
  errno = saved;
  return r;
}

ssize_t pwritev64(int fd, const struct iovec *iov, int n, off64_t off) {
  REAL(pwritev64);
  ssize_t r = real_pwritev64(fd, iov, n, off);
  int saved = errno;
  if (r > 0) note_write(fd, (long long)off, r);
  errno = saved;
  return r;
}

ssize_t pwritev2(int fd, const struct iovec *iov, int n, off_t off, int flags) {
  REAL(pwritev2);
  ssize_t r = real_pwritev2(fd, iov, n, off, flags);
  int saved = errno;
  if (r > 0) note_write(fd, off < 0 ? -1 : (long long)off, r);
  errno = saved;
  return r;
}

ssize_t pwritev64v2(int fd, const struct iovec *iov, int n, off64_t off, int flags) {
  REAL(pwritev64v2);
  ssize_t r = real_pwritev64v2(fd, iov, n, off, flags);
  int saved = errno;
  if (r > 0) note_write(fd, off < 0 ? -1 : (long long)off, r);
  errno = saved;
  return r;
}

static void note_truncate(int fd, long long length) {
  if (log_fd < 0) return;
  struct ident id;
  if (ident_of(fd, "", AT_EMPTY_PATH, &id) != 0 || !id.reg) return;
  char path[PATH_MAX];
  if (!tracked_path(fd, path, sizeof path)) return;
  char line[PATH_MAX + 128];
  int n = snprintf(line, sizeof line, "T %llu %llu-%llu %lld %s\n", next_seq(), id.ino, id.btime, length, path);
  if (n > 0 && (size_t)n < sizeof line) log_raw(line, (size_t)n);
}

int ftruncate(int fd, off_t length) {
  REAL(ftruncate);
  int r = real_ftruncate(fd, length);
  int saved = errno;
  if (r == 0) note_truncate(fd, (long long)length);
  errno = saved;
  return r;
}

int ftruncate64(int fd, off64_t length) {
  REAL(ftruncate64);
  int r = real_ftruncate64(fd, length);
  int saved = errno;
  if (r == 0) note_truncate(fd, (long long)length);
  errno = saved;
  return r;
}
