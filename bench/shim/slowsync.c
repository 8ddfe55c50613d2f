/*
 * slowsync: an LD_PRELOAD shim for the Postline bench. It wraps the calls that make data durable
 * (fsync, fdatasync, syncfs, sync, sync_file_range, msync), calls the real one (dlsym RTLD_NEXT),
 * then sleeps a configured time to stand in for a slow disk, and counts every call per process.
 *
 * Environment (read at the first wrapped call of each process):
 *   SLOWSYNC_DIR   directory for the per-process counter files, one per pid (required to count)
 *   SLOWSYNC_CTL   control file, 8 bytes mmapped and re-read at every call: uint32 delay in
 *                  microseconds, uint32 mode (0 = each call sleeps on its own, like a device with
 *                  unlimited parallelism; 1 = serialized, one sleep at a time across all processes)
 *   SLOWSYNC_LOCK  lock file for the serialized mode (flock held around the sleep)
 *   SLOWSYNC_DELAY_US  fixed delay when there is no control file (default 0: counting only)
 *
 * Counter file <dir>/<pid>: a struct slowsync_counts, mmapped MAP_SHARED and updated with atomic
 * adds on each call, so the counts are in the page cache as soon as the call returns: they
 * survive _exit, SIGKILL and exec (after exec the same pid reopens the same file and keeps
 * adding). A fork gets its own file (the pid is checked at every call).
 *
 * What sleeps: fsync, fdatasync, syncfs and sync always; msync only with MS_SYNC (MS_ASYNC is a
 * no-op on Linux); sync_file_range only with SYNC_FILE_RANGE_WAIT_AFTER (otherwise it only
 * starts writeback). Every call is counted either way.
 *
 * Build: cc -O2 -shared -fPIC -o slowsync.so slowsync.c -ldl -lpthread (the bench does this at
 * run time into its temp dir; no binary is committed).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#define MAGIC 0x534c4f5753594e43ULL /* "SLOWSYNC" */

enum { C_FSYNC, C_FDATASYNC, C_SYNCFS, C_SYNC, C_SYNC_FILE_RANGE, C_MSYNC, C_N };

struct slowsync_counts {
  uint64_t magic;
  uint64_t pid;
  uint64_t calls[C_N];   /* per wrapped function */
  uint64_t slept_us;     /* total time slept by this process */
  uint64_t real_ns;      /* total time in the real calls */
  char comm[64];         /* /proc/self/comm at the first call (after exec: the new image) */
};

struct slowsync_ctl { uint32_t delay_us; uint32_t mode; };

static pthread_mutex_t init_lock = PTHREAD_MUTEX_INITIALIZER;
static volatile pid_t counts_pid = 0;
static struct slowsync_counts *counts = NULL;
static struct slowsync_ctl *ctl = NULL;
static int ctl_tried = 0;
static int lock_fd = -1;
static uint32_t env_delay_us = 0;

static void read_comm(char *out, size_t n) {
  int fd = open("/proc/self/comm", O_RDONLY | O_CLOEXEC);
  out[0] = 0;
  if (fd < 0) return;
  ssize_t r = read(fd, out, n - 1);
  close(fd);
  if (r <= 0) { out[0] = 0; return; }
  out[r] = 0;
  char *nl = strchr(out, '\n');
  if (nl) *nl = 0;
}

/* Maps this process's counter file (again after a fork). Never fails the wrapped call. */
static void ensure_init(void) {
  pid_t me = getpid();
  if (counts_pid == me) return;
  pthread_mutex_lock(&init_lock);
  if (counts_pid != me) {
    const char *dir = getenv("SLOWSYNC_DIR");
    struct slowsync_counts *c = NULL;
    if (dir && *dir) {
      char path[4096];
      snprintf(path, sizeof path, "%s/%d", dir, (int)me);
      int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0666);
      if (fd >= 0) {
        struct stat st;
        if (fstat(fd, &st) == 0 && st.st_size < (off_t)sizeof *c) {
          if (ftruncate(fd, sizeof *c) != 0) { /* mapping below fails; counting is off */ }
        }
        void *m = mmap(NULL, sizeof *c, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        close(fd);
        if (m != MAP_FAILED) c = m;
      }
    }
    if (c) {
      c->magic = MAGIC;
      c->pid = (uint64_t)me;
      read_comm(c->comm, sizeof c->comm);
    }
    /* A forked child must not keep adding to its parent's file. */
    counts = c;
    if (!ctl_tried) {
      ctl_tried = 1;
      const char *d = getenv("SLOWSYNC_DELAY_US");
      if (d) env_delay_us = (uint32_t)strtoul(d, NULL, 10);
      const char *cp = getenv("SLOWSYNC_CTL");
      if (cp && *cp) {
        int fd = open(cp, O_RDONLY | O_CLOEXEC);
        if (fd >= 0) {
          void *m = mmap(NULL, sizeof *ctl, PROT_READ, MAP_SHARED, fd, 0);
          close(fd);
          if (m != MAP_FAILED) ctl = m;
        }
      }
      const char *lp = getenv("SLOWSYNC_LOCK");
      if (lp && *lp) lock_fd = open(lp, O_RDWR | O_CREAT | O_CLOEXEC, 0666);
    }
    counts_pid = me;
  }
  pthread_mutex_unlock(&init_lock);
}

static uint64_t now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (uint64_t)t.tv_sec * 1000000000ULL + (uint64_t)t.tv_nsec;
}

static void slow_down(void) {
  uint32_t delay = ctl ? __atomic_load_n(&ctl->delay_us, __ATOMIC_RELAXED) : env_delay_us;
  uint32_t mode = ctl ? __atomic_load_n(&ctl->mode, __ATOMIC_RELAXED) : 0;
  if (!delay) return;
  int locked = 0;
  if (mode == 1 && lock_fd >= 0) {
    while (flock(lock_fd, LOCK_EX) != 0 && errno == EINTR) { }
    locked = 1;
  }
  struct timespec ts = { delay / 1000000, (long)(delay % 1000000) * 1000 };
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) { }
  if (locked) flock(lock_fd, LOCK_UN);
  if (counts) __atomic_fetch_add(&counts->slept_us, delay, __ATOMIC_RELAXED);
}

#define REAL(name) \
  static __typeof__(&name) real_##name = NULL; \
  if (!real_##name) real_##name = (__typeof__(&name))dlsym(RTLD_NEXT, #name)

static void account(int which, uint64_t t0) {
  if (!counts) return;
  __atomic_fetch_add(&counts->calls[which], 1, __ATOMIC_RELAXED);
  __atomic_fetch_add(&counts->real_ns, now_ns() - t0, __ATOMIC_RELAXED);
}

int fsync(int fd) {
  REAL(fsync);
  ensure_init();
  int saved, r;
  uint64_t t0 = now_ns();
  r = real_fsync(fd); saved = errno;
  account(C_FSYNC, t0);
  slow_down();
  errno = saved;
  return r;
}

int fdatasync(int fd) {
  REAL(fdatasync);
  ensure_init();
  int saved, r;
  uint64_t t0 = now_ns();
  r = real_fdatasync(fd); saved = errno;
  account(C_FDATASYNC, t0);
  slow_down();
  errno = saved;
  return r;
}

int syncfs(int fd) {
  REAL(syncfs);
  ensure_init();
  int saved, r;
  uint64_t t0 = now_ns();
  r = real_syncfs(fd); saved = errno;
  account(C_SYNCFS, t0);
  slow_down();
  errno = saved;
  return r;
}

void sync(void) {
  REAL(sync);
  ensure_init();
  int saved;
  uint64_t t0 = now_ns();
  real_sync(); saved = errno;
  account(C_SYNC, t0);
  slow_down();
  errno = saved;
}

int sync_file_range(int fd, off_t offset, off_t nbytes, unsigned int flags) {
  REAL(sync_file_range);
  ensure_init();
  int saved, r;
  uint64_t t0 = now_ns();
  r = real_sync_file_range(fd, offset, nbytes, flags); saved = errno;
  account(C_SYNC_FILE_RANGE, t0);
  if (flags & SYNC_FILE_RANGE_WAIT_AFTER) slow_down();
  errno = saved;
  return r;
}

int msync(void *addr, size_t length, int flags) {
  REAL(msync);
  ensure_init();
  int saved, r;
  uint64_t t0 = now_ns();
  r = real_msync(addr, length, flags); saved = errno;
  account(C_MSYNC, t0);
  if (flags & MS_SYNC) slow_down();
  errno = saved;
  return r;
}
