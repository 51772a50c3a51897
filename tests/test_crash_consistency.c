/* Crash consistency of the persistent cache: a writer child process puts values continuously
 * and is killed with SIGKILL at a random moment (0-20 ms after it is ready, or while it is
 * still opening and recovering the directory); the parent reopens the directory, times the
 * index rebuild, and verifies zero corrupted reads and zero lost acknowledged-durable puts.
 *
 * Two durability modes: DS_CACHE_SYNC_EVERY_PUT (every put that returned DS_OK is durable) and
 * DS_CACHE_SYNC_BATCHED with explicit ds_cache_flush() calls (only the puts acknowledged
 * before a flush that returned DS_OK are durable; later ones may be missing, never corrupt).
 * The child reports its progress through a shared anonymous mapping.
 *
 * Rounds per mode: DS_CRASH_ROUNDS (default 200; 30 in sanitizer builds), after a prefill of
 * 50 entries per default round, so that the timed index rebuilds are of a realistic index.
 * SIGKILL tests a process crash: the page cache survives it, so this does not prove
 * power-loss durability. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"
#include "test_util.h"

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define CRASH_DEFAULT_ROUNDS 30
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define CRASH_DEFAULT_ROUNDS 30
#endif
#endif
#ifndef CRASH_DEFAULT_ROUNDS
#define CRASH_DEFAULT_ROUNDS 200
#endif
#define PREFILL (CRASH_DEFAULT_ROUNDS * 50) /* entries written before the first kill */

#define MAX_BYTES ((uint64_t)64 << 20)
#define FLUSH_EVERY 8 /* batched mode: a flush after every 8 puts */

/* What the writer child tells the parent; lives in a MAP_SHARED anonymous mapping. */
typedef struct {
  ds__atomic_i64 ready;   /* 1 once the cache is open */
  ds__atomic_i64 acked;   /* puts that returned DS_OK (keys 0..acked-1 of this round) */
  ds__atomic_i64 durable; /* puts known durable (sync mode: = acked; batched: up to a flush) */
  ds__atomic_i64 failed;  /* a ds_status if a put or flush failed (the child then exits) */
} shared_progress;

typedef struct {
  int mode;            /* a ds_cache_durability */
  uint32_t round;      /* key prefix of the current round */
  uint64_t *durable;   /* per past round: durable puts, for sampling old keys */
  uint32_t nrounds;
  double rebuild_ms[2048];
  int nrebuild;
  uint64_t lost, corrupt, torn, checked, acked_total, open_kills, max_entries;
} crash_run;

static ds_context *new_ctx(void) {
  ds_context_options o = DS_CONTEXT_OPTIONS_INIT;
  o.flags = DS_CONTEXT_NO_ENV;
  ds_param_value quiet[] = {{DS_PARAM_TELEMETRY_ENABLE, 0, 0},
                            {DS_PARAM_STATS_FILE, 0, 0},
                            {DS_PARAM_LOG_LEVEL, 0, DS_LOG_ERROR}};
  o.params = quiet;
  o.nparams = 3;
  ds_context *ctx = NULL;
  if (ds_context_create(&ctx, &o) != DS_OK) return NULL;
  return ctx;
}

static void crash_dir(char *out, size_t cap, int mode) {
  const char *dir = getenv("DS_TEST_TMP");
  snprintf(out, cap, "%s/crash_consistency.%d.%d", dir ? dir : "/tmp", mode, (int)getpid());
}

static void remove_dir(const char *dir) {
  char cmd[1200];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  assert_int_equal(system(cmd), 0);
}

/* Keys are 8 bytes (round << 32 | sequence); values 16..1551 bytes derived from the key, so
 * any torn, stale or misplaced byte is detected. */
static uint64_t key_of(uint32_t round, uint32_t seq) { return (uint64_t)round << 32 | seq; }

static size_t value_of(uint64_t key, uint8_t *v) {
  uint64_t x = key * 0x9E3779B97F4A7C15ull;
  size_t n = 16 + (size_t)(x >> 40) % 1536;
  for (size_t i = 0; i < n; i++) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    v[i] = (uint8_t)x;
  }
  return n;
}

static ds_cache *open_writer(ds_context *ctx, const char *dir, int mode) {
  ds_cache_persist_options o = DS_CACHE_PERSIST_OPTIONS_INIT;
  o.max_bytes = MAX_BYTES;
  o.durability = mode;
  o.sync_interval_ms = 60000; /* batched: only explicit flushes make puts durable */
  ds_cache *c = NULL;
  return ds_cache_open_persistent_ex(&c, ctx, dir, &o) == DS_OK ? c : NULL;
}

/* The child: opens the cache and puts until it is killed. Never returns. */
static void writer_child(const char *dir, int mode, uint32_t round, shared_progress *sp) {
  ds_context *ctx = new_ctx();
  ds_cache *c = ctx ? open_writer(ctx, dir, mode) : NULL;
  if (!c) {
    ds__store(&sp->failed, (int64_t)DS_ERR_IO);
    _exit(2);
  }
  ds__store(&sp->ready, 1);
  uint8_t v[2048];
  for (uint32_t seq = 0;; seq++) {
    uint64_t k = key_of(round, seq);
    size_t n = value_of(k, v);
    ds_status st = ds_cache_put(c, &k, sizeof k, v, n);
    if (st != DS_OK) {
      ds__store(&sp->failed, (int64_t)st);
      _exit(3);
    }
    ds__store(&sp->acked, (int64_t)seq + 1);
    if (mode == DS_CACHE_SYNC_EVERY_PUT) {
      ds__store(&sp->durable, (int64_t)seq + 1);
    } else if ((seq + 1) % FLUSH_EVERY == 0) {
      if ((st = ds_cache_flush(c)) != DS_OK) {
        ds__store(&sp->failed, (int64_t)st);
        _exit(3);
      }
      ds__store(&sp->durable, (int64_t)seq + 1);
    }
  }
}

static void sleep_us(long us) {
  struct timespec ts = {us / 1000000, (us % 1000000) * 1000};
  nanosleep(&ts, NULL);
}

/* Checks one key: present with exactly its value (counted), or absent (allowed only when
 * not required). Anything else is a corrupted read. */
static void check_key(crash_run *r, ds_cache *c, uint64_t k, int required) {
  uint8_t want[2048], got[2048];
  size_t n = value_of(k, want), len = 0;
  ds_status st = ds_cache_get(c, &k, sizeof k, got, sizeof got, &len);
  r->checked++;
  if (st == DS_ERR_NOT_FOUND) {
    if (required) {
      r->lost++;
      fprintf(stderr, "crash: round %u key %llx acknowledged durable but missing\n",
              (unsigned)(k >> 32), (unsigned long long)k);
    }
  } else if (st != DS_OK || len != n || memcmp(want, got, n)) {
    r->corrupt++;
    fprintf(stderr, "crash: key %llx read back %s (len %zu, want %zu)\n", (unsigned long long)k,
            ds_status_name(st), len, n);
  }
}

/* Reopens after the kill, timing the index rebuild, and verifies this round's keys plus a
 * sample of earlier rounds'. Returns the stored bytes, to decide when to start afresh. */
static uint64_t verify_round(crash_run *r, ds_context *ctx, const char *dir,
                             const shared_progress *sp, uint32_t first_round) {
  uint64_t t0 = ds__now_ns();
  ds_cache *c = open_writer(ctx, dir, DS_CACHE_SYNC_EVERY_PUT);
  if (!c) fprintf(stderr, "crash: reopen failed: %s\n", ds_context_last_error(ctx));
  assert_non_null(c);
  r->rebuild_ms[r->nrebuild++] = (double)(ds__now_ns() - t0) / 1e6;
  int64_t durable = ds__load(&sp->durable), acked = ds__load(&sp->acked);
  r->acked_total += (uint64_t)acked;
  for (int64_t s = 0; s < acked + 4; s++)
    check_key(r, c, key_of(r->round, (uint32_t)s), s < durable);
  r->durable[r->round] = (uint64_t)durable;
  for (int i = 0; i < 64 && r->round > first_round; i++) {
    uint32_t past = first_round + (uint32_t)rand() % (r->round - first_round);
    if (r->durable[past])
      check_key(r, c, key_of(past, (uint32_t)((uint64_t)rand() % r->durable[past])), 1);
  }
  ds_cache_tier_stats s = ds_test_tier_stats(c, DS_CACHE_L3);
  r->torn += s.corrupt;
  if (s.entries > r->max_entries) r->max_entries = s.entries;
  ds_cache_destroy(c);
  return s.bytes;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static int rounds_wanted(void) {
  const char *e = getenv("DS_CRASH_ROUNDS");
  int n = e ? atoi(e) : CRASH_DEFAULT_ROUNDS;
  return n < 1 ? 1 : n > 2000 ? 2000 : n;
}

static uint64_t one_kill(crash_run *r, ds_context *ctx, const char *dir, shared_progress *sp,
                         uint32_t first_round) {
  memset(sp, 0, sizeof *sp);
  int early = rand() % 8 == 0; /* one kill in eight lands while the child opens/recovers */
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) writer_child(dir, r->mode, r->round, sp);
  if (early) {
    sleep_us(rand() % 3000);
    r->open_kills += !ds__load(&sp->ready);
  } else {
    for (int i = 0; i < 100000 && !ds__load(&sp->ready); i++) sleep_us(100);
    sleep_us(rand() % 20001);
  }
  kill(pid, SIGKILL);
  int status = 0;
  assert_int_equal(waitpid(pid, &status, 0), pid);
  if (!WIFSIGNALED(status))
    fprintf(stderr, "crash: writer exited by itself (status %d, put/flush error %s)\n", status,
            ds_status_name((ds_status)ds__load(&sp->failed)));
  assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
  assert_int_equal(ds__load(&sp->failed), 0);
  return verify_round(r, ctx, dir, sp, first_round);
}

/* Round 0: an index of PREFILL entries, so that the rebuild times are those of a real
 * directory; a sample of them is checked after every kill. */
static void prefill(crash_run *r, ds_context *ctx, const char *dir) {
  ds_cache *c = open_writer(ctx, dir, DS_CACHE_SYNC_BATCHED);
  assert_non_null(c);
  uint8_t v[2048];
  for (uint32_t seq = 0; seq < PREFILL; seq++) {
    uint64_t k = key_of(0, seq);
    assert_int_equal(ds_cache_put(c, &k, sizeof k, v, value_of(k, v)), DS_OK);
  }
  assert_int_equal(ds_cache_flush(c), DS_OK);
  ds_cache_destroy(c);
  r->durable[0] = PREFILL;
}

static void run_mode(int mode) {
  crash_run *r = calloc(1, sizeof *r);
  assert_non_null(r);
  r->mode = mode;
  int rounds = rounds_wanted();
  r->durable = calloc((size_t)rounds + 2, sizeof *r->durable);
  assert_non_null(r->durable);
  shared_progress *sp = mmap(NULL, sizeof *sp, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
                             -1, 0);
  assert_true(sp != MAP_FAILED);
  char dir[1024];
  crash_dir(dir, sizeof dir, mode);
  remove_dir(dir);
  ds_context *ctx = new_ctx();
  assert_non_null(ctx);
  prefill(r, ctx, dir);
  uint64_t t0 = ds__now_ns();
  uint32_t first_round = 0;
  for (r->round = 1; r->round <= (uint32_t)rounds; r->round++) {
    if (one_kill(r, ctx, dir, sp, first_round) > MAX_BYTES / 2) {
      /* start afresh before the budget would evict durable puts */
      remove_dir(dir);
      first_round = r->round + 1;
    }
  }
  double secs = (double)(ds__now_ns() - t0) / 1e9;
  qsort(r->rebuild_ms, (size_t)r->nrebuild, sizeof(double), cmp_double);
  printf("crash consistency (%s): %d SIGKILLs (%llu during open/recovery) in %.1f s; "
         "%llu puts acknowledged, %llu reads checked: %llu lost durable, %llu corrupt; "
         "%llu torn records skipped at reopen; index rebuild median %.2f ms, max %.2f ms "
         "(up to %llu entries)\n",
         mode == DS_CACHE_SYNC_EVERY_PUT ? "sync every put" : "batched + flush", rounds,
         (unsigned long long)r->open_kills, secs, (unsigned long long)r->acked_total,
         (unsigned long long)r->checked, (unsigned long long)r->lost,
         (unsigned long long)r->corrupt, (unsigned long long)r->torn,
         r->rebuild_ms[r->nrebuild / 2], r->rebuild_ms[r->nrebuild - 1],
         (unsigned long long)r->max_entries);
  fflush(stdout);
  assert_int_equal(r->lost, 0);
  assert_int_equal(r->corrupt, 0);
  assert_true(r->acked_total > 0);
  ds_context_destroy(ctx);
  remove_dir(dir);
  munmap(sp, sizeof *sp);
  free(r->durable);
  free(r);
}

static void test_kill_sync_every_put(void **state) {
  (void)state;
  run_mode(DS_CACHE_SYNC_EVERY_PUT);
}

static void test_kill_batched_flush(void **state) {
  (void)state;
  run_mode(DS_CACHE_SYNC_BATCHED);
}

int main(void) {
  srand((unsigned)time(NULL) ^ (unsigned)getpid());
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_kill_sync_every_put),
      cmocka_unit_test(test_kill_batched_flush),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
