/* Tests of the telemetry sampler (src/core/telemetry.c) and its readers
 * (src/core/telemetry_sources.c): the readers against fixture files, the sampler on this machine.
 * Timing assertions leave wide margins: the machine may be loaded and the build sanitized. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <dlfcn.h>
#include <math.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"
#include "telemetry_sources.h"

/* ---------------------------------------------------------------- helpers */

static void sleep_ms(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0) {
  }
}

static ds_context *make_ctx(int64_t period_ms, int64_t capacity, int64_t enable, const char *peer) {
  ds_param_value p[] = {{DS_PARAM_TELEMETRY_PERIOD_MS, 0, period_ms},
                        {DS_PARAM_TELEMETRY_CAPACITY, 0, capacity},
                        {DS_PARAM_TELEMETRY_ENABLE, 0, enable},
                        {DS_PARAM_TELEMETRY_NET_PERIOD_MS, 0, 10},
                        {DS_PARAM_STATS_FILE, 0, 0}};
  ds_context_options o = DS_CONTEXT_OPTIONS_INIT;
  o.flags = DS_CONTEXT_NO_ENV;
  o.params = p;
  o.nparams = sizeof p / sizeof p[0];
  o.telemetry_peer = peer;
  ds_context *ctx = NULL;
  assert_int_equal(ds_context_create(&ctx, &o), DS_OK);
  assert_non_null(ctx);
  return ctx;
}

static ds_telemetry_sample latest(ds_context *ctx) {
  ds_telemetry_sample s = DS_TELEMETRY_SAMPLE_INIT;
  assert_int_equal(ds_telemetry_latest(&s, ctx), DS_OK);
  return s;
}

/* Polls until the latest sample satisfies @p want (or @p ms pass); returns that sample. */
static ds_telemetry_sample wait_for(ds_context *ctx, int (*want)(const ds_telemetry_sample *),
                                    int ms) {
  ds_telemetry_sample s = latest(ctx);
  for (int waited = 0; !want(&s) && waited < ms; waited += 10) {
    sleep_ms(10);
    s = latest(ctx);
  }
  return s;
}

static int in_unit(float v) { return v >= 0.0f && v <= 1.0f; }

/* A quantity is either valid and in range, or NaN with its bit clear: never a fake value. */
static void check_field(const ds_telemetry_sample *s, uint32_t bit, float v, int unit) {
  if (s->valid & bit) {
    assert_false(isnan(v));
    if (unit) assert_true(in_unit(v));
  } else {
    assert_true(isnan(v));
  }
}

static void check_sample(const ds_telemetry_sample *s) {
  assert_int_equal(s->struct_size, sizeof *s);
  check_field(s, DS_TELEMETRY_CPU, s->cpu_util, 1);
  check_field(s, DS_TELEMETRY_MEM, s->mem_used, 1);
  check_field(s, DS_TELEMETRY_GPU, s->gpu_util, 1);
  check_field(s, DS_TELEMETRY_GPU, s->gpu_mem_used, 1);
  check_field(s, DS_TELEMETRY_QUEUE, s->queue_depth, 0);
  check_field(s, DS_TELEMETRY_NET, s->net_latency_us, 0);
  if (s->valid & DS_TELEMETRY_PSI)
    assert_true(in_unit(s->mem_pressure));
  else if (s->valid & DS_TELEMETRY_MEM)
    assert_true(s->mem_pressure == s->mem_used);
  else
    assert_true(isnan(s->mem_pressure));
}

static const char *tmp_dir(void) {
  const char *d = getenv("DS_TEST_TMP");
  return d && *d ? d : ".";
}

static void write_file(const char *path, const char *text) {
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  fputs(text, f);
  fclose(f);
}

/* ---------------------------------------------------------------- readers, on fixtures */

static void test_cpu_reader_deltas(void **state) {
  (void)state;
  ds_context *ctx = make_ctx(100, 16, 0, NULL);
  char path[512];
  snprintf(path, sizeof path, "%s/telemetry_stat_%d", tmp_dir(), (int)getpid());
  /* fields: user nice system idle iowait irq softirq steal guest guest_nice */
  write_file(path, "cpu  100 0 100 800 0 0 0 0 7 7\ncpu0 50 0 50 400 0 0 0 0 0 0\n"
                   "cpu1 50 0 50 400 0 0 0 0 0 0\nintr 5 6 7\n");
  ds__cpu_src s;
  assert_int_equal(ds__cpu_src_open(ctx, &s, path, 2), DS_OK);
  float m, c[2];
  /* The first reading is the baseline: no utilisation without a delta. */
  assert_int_equal(ds__cpu_src_read(&s, &m, c), 0);
  assert_true(isnan(m) && isnan(c[0]) && isnan(c[1]));

  /* machine: +100 ticks, 30 busy (iowait counts as idle); cpu0: 10 of 50; cpu1 offline. */
  write_file(path, "cpu  120 0 110 860 10 0 0 0 99 99\ncpu0 60 0 50 440 0 0 0 0 0 0\n");
  assert_int_equal(ds__cpu_src_read(&s, &m, c), 1);
  assert_float_equal(m, 0.3f, 1e-6f);
  assert_float_equal(c[0], 0.2f, 1e-6f);
  assert_true(isnan(c[1]));

  /* No tick passed: NaN, and the baseline stays for the next reading. */
  assert_int_equal(ds__cpu_src_read(&s, &m, c), 0);
  assert_true(isnan(m) && isnan(c[0]));
  write_file(path, "cpu  170 0 110 910 10 0 0 0 0 0\ncpu0 60 0 50 440 0 0 0 0 0 0\n"
                   "cpu1 60 0 50 440 0 0 0 0 0 0\n");
  assert_int_equal(ds__cpu_src_read(&s, &m, c), 1);
  assert_float_equal(m, 0.5f, 1e-6f);
  assert_true(isnan(c[0]));               /* cpu0 did not move */
  assert_float_equal(c[1], 0.2f, 1e-6f); /* cpu1 back online, against its old baseline */

  /* Counters going backwards restart the baseline instead of giving a wild value. */
  write_file(path, "cpu  10 0 10 80 0 0 0 0 0 0\n");
  assert_int_equal(ds__cpu_src_read(&s, &m, c), 0);
  write_file(path, "cpu  20 0 10 170 0 0 0 0 0 0\n");
  assert_int_equal(ds__cpu_src_read(&s, &m, c), 1);
  assert_float_equal(m, 0.1f, 1e-6f);

  /* Malformed, truncated (no newline) or missing: unavailable, not 0. */
  write_file(path, "cpu  1 2\n");
  assert_int_equal(ds__cpu_src_read(&s, &m, c), 0);
  write_file(path, "cpu  40 0 10 250 0 0 0 0 0 0");
  assert_int_equal(ds__cpu_src_read(&s, &m, c), 0);
  assert_true(isnan(m));
  unlink(path);
  assert_int_equal(ds__cpu_src_read(&s, &m, c), 0);
  assert_true(isnan(m) && isnan(c[0]) && isnan(c[1]));
  ds__cpu_src_close(ctx, &s);
  ds_context_destroy(ctx);
}

static void test_mem_and_psi_readers(void **state) {
  (void)state;
  char path[512];
  float v;
  snprintf(path, sizeof path, "%s/telemetry_mem_%d", tmp_dir(), (int)getpid());
  write_file(path, "MemTotal:       1000 kB\nMemFree:   100 kB\nMemAvailable:    250 kB\n");
  assert_int_equal(ds__mem_read(path, &v), 1);
  assert_float_equal(v, 0.75f, 1e-6f);
  write_file(path, "MemTotal:       1000 kB\nMemFree:   100 kB\n"); /* kernel before 3.14 */
  assert_int_equal(ds__mem_read(path, &v), 0);
  assert_true(isnan(v));
  write_file(path, "MemTotal: 0 kB\nMemAvailable: 0 kB\n");
  assert_int_equal(ds__mem_read(path, &v), 0);

  write_file(path, "some avg10=12.50 avg60=1.00 avg300=0.00 total=5\n"
                   "full avg10=3.00 avg60=0.00 avg300=0.00 total=1\n");
  assert_int_equal(ds__psi_read(path, &v), 1);
  assert_float_equal(v, 0.125f, 1e-6f);
  write_file(path, "full avg10=3.00 avg60=0.00 avg300=0.00 total=1\n");
  assert_int_equal(ds__psi_read(path, &v), 0);
  assert_true(isnan(v));
  write_file(path, "some avg10=abc\n");
  assert_int_equal(ds__psi_read(path, &v), 0);
  unlink(path);
  assert_int_equal(ds__psi_read(path, &v), 0);
  assert_int_equal(ds__mem_read(path, &v), 0);
}

static void test_peer_parsing(void **state) {
  (void)state;
  static const struct {
    const char *in, *host, *port;
  } ok[] = {{"127.0.0.1:80", "127.0.0.1", "80"},
            {"[::1]:8080", "::1", "8080"},
            {"localhost:http", "localhost", "http"}};
  for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
    char buf[64], *host, *port;
    snprintf(buf, sizeof buf, "%s", ok[i].in);
    assert_int_equal(ds__net_split_peer(buf, &host, &port), 1);
    assert_string_equal(host, ok[i].host);
    assert_string_equal(port, ok[i].port);
  }
  static const char *const bad[] = {"localhost", "::1:80", "[::1]80", "[::1:80", ":80", "host:", ""};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    char buf[64], *host, *port;
    snprintf(buf, sizeof buf, "%s", bad[i]);
    assert_int_equal(ds__net_split_peer(buf, &host, &port), 0);
  }
  /* A malformed peer fails context creation with a message naming it. */
  ds_context_options o = DS_CONTEXT_OPTIONS_INIT;
  o.flags = DS_CONTEXT_NO_ENV;
  o.telemetry_peer = "::1:80";
  ds_context *ctx = NULL;
  assert_int_equal(ds_context_create(&ctx, &o), DS_ERR_INVALID_ARG);
  assert_null(ctx);
  assert_non_null(strstr(ds_context_last_error(NULL), "::1:80"));
}

/* ---------------------------------------------------------------- the API's contract */

static void test_null_args(void **state) {
  (void)state;
  ds_context *ctx = make_ctx(60000, 16, 1, NULL);
  ds_telemetry_sample s = DS_TELEMETRY_SAMPLE_INIT;
  size_t n = 99;
  float f[4];
  assert_int_equal(ds_telemetry_latest(&s, NULL), DS_ERR_INVALID_ARG);
  assert_non_null(strstr(ds_context_last_error(NULL), "ctx is NULL"));
  assert_int_equal(ds_telemetry_latest(NULL, ctx), DS_ERR_INVALID_ARG);
  assert_non_null(strstr(ds_context_last_error(ctx), "telemetry: ds_telemetry_latest: out is NULL"));
  assert_int_equal(ds_telemetry_window(NULL, &n, ctx, 4), DS_ERR_INVALID_ARG);
  assert_int_equal(ds_telemetry_window(&s, NULL, ctx, 4), DS_ERR_INVALID_ARG);
  assert_non_null(strstr(ds_context_last_error(ctx), "count is NULL"));
  assert_int_equal(ds_telemetry_window(&s, &n, ctx, 0), DS_ERR_INVALID_ARG);
  assert_int_equal(ds_telemetry_window(&s, &n, NULL, 1), DS_ERR_INVALID_ARG);
  assert_int_equal(ds_telemetry_cores(NULL, &n, ctx, 4), DS_ERR_INVALID_ARG);
  assert_int_equal(ds_telemetry_cores(f, NULL, ctx, 4), DS_ERR_INVALID_ARG);
  assert_int_equal(ds_telemetry_cores(f, &n, NULL, 4), DS_ERR_INVALID_ARG);
  assert_int_equal(ds_telemetry_sample_now(NULL), DS_ERR_INVALID_ARG);
  ds__telemetry_set_queue_depth_fn(NULL, NULL, NULL); /* a no-op, not a crash */
  ds_context_destroy(ctx);
}

static void test_disabled(void **state) {
  (void)state;
  ds_context *ctx = make_ctx(100, 16, 0, NULL);
  ds_telemetry_sample s = DS_TELEMETRY_SAMPLE_INIT;
  size_t n;
  float f[4];
  assert_int_equal(ds_telemetry_latest(&s, ctx), DS_ERR_UNAVAILABLE);
  assert_non_null(strstr(ds_context_last_error(ctx), "disabled"));
  assert_int_equal(ds_telemetry_window(&s, &n, ctx, 1), DS_ERR_UNAVAILABLE);
  assert_int_equal(ds_telemetry_cores(f, &n, ctx, 4), DS_ERR_UNAVAILABLE);
  assert_int_equal(ds_telemetry_sample_now(ctx), DS_ERR_UNAVAILABLE);
  assert_non_null(strstr(ds_context_last_error(ctx), "disabled"));
  ds_context_destroy(ctx);
}

static void test_bad_struct_size(void **state) {
  (void)state;
  ds_context *ctx = make_ctx(60000, 16, 1, NULL);
  const uint32_t bad[] = {0, 8, 16, 28, (uint32_t)sizeof(ds_telemetry_sample) + 8, 0xffffffffu};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    ds_telemetry_sample s[2] = {DS_TELEMETRY_SAMPLE_INIT, DS_TELEMETRY_SAMPLE_INIT};
    size_t n = 7;
    s[0].struct_size = bad[i];
    assert_int_equal(ds_telemetry_latest(&s[0], ctx), DS_ERR_ABI);
    assert_non_null(strstr(ds_context_last_error(ctx), "struct_size"));
    assert_int_equal(ds_telemetry_window(s, &n, ctx, 2), DS_ERR_ABI);
    assert_int_equal(n, 0);
  }
  ds_context_destroy(ctx);
}

/* The first sample exists as soon as create returns; CPU needs two readings, so it is NaN. */
static void test_first_sample(void **state) {
  (void)state;
  ds_context *ctx = make_ctx(60000, 16, 1, NULL);
  ds_telemetry_sample s = latest(ctx);
  assert_int_equal(s.seq, 0);
  assert_true(s.time_ns > 0 && s.time_ns <= ds__now_ns());
  assert_false(s.valid & DS_TELEMETRY_CPU);
  assert_true(isnan(s.cpu_util));
  assert_true(s.valid & DS_TELEMETRY_MEM); /* /proc/meminfo exists wherever these tests run */
  assert_int_equal(s.ncores, (uint32_t)sysconf(_SC_NPROCESSORS_CONF));
  check_sample(&s);
  ds_context_destroy(ctx);
}

/* ---------------------------------------------------------------- the sampler at work */

static int has_cpu(const ds_telemetry_sample *s) { return (s->valid & DS_TELEMETRY_CPU) != 0; }

static void test_samples_over_a_second(void **state) {
  (void)state;
  ds_context *ctx = make_ctx(20, 4096, 1, NULL);
  sleep_ms(1000);
  static ds_telemetry_sample w[256];
  size_t n = 0, with_cpu = 0;
  w[0].struct_size = sizeof w[0];
  assert_int_equal(ds_telemetry_window(w, &n, ctx, 256), DS_OK);
  assert_true(n >= 10); /* 50 nominally; a loaded, sanitized run still gets well past 10 */
  assert_int_equal(w[0].seq, 0);
  for (size_t i = 0; i < n; i++) {
    check_sample(&w[i]);
    with_cpu += has_cpu(&w[i]);
    if (i == 0) continue;
    assert_int_equal(w[i].seq, w[i - 1].seq + 1);
    assert_true(w[i].time_ns > w[i - 1].time_ns);
  }
  assert_true(with_cpu >= 1);
  FILE *psi = fopen("/proc/pressure/memory", "r");
  char line[128];
  int psi_ok = psi && fgets(line, sizeof line, psi) != NULL;
  if (psi) fclose(psi);
  assert_int_equal((w[n - 1].valid & DS_TELEMETRY_PSI) != 0, psi_ok);
  ds_context_destroy(ctx);
}

static void test_cores(void **state) {
  (void)state;
  ds_context *ctx = make_ctx(60000, 16, 1, NULL);
  sleep_ms(50);
  assert_int_equal(ds_telemetry_sample_now(ctx), DS_OK);
  ds_telemetry_sample s = latest(ctx);
  float f[4096];
  size_t n = 0;
  assert_int_equal(ds_telemetry_cores(f, &n, ctx, 4096), DS_OK);
  assert_int_equal(n, s.ncores);
  for (size_t i = 0; i < n; i++) assert_true(isnan(f[i]) || in_unit(f[i]));
  /* the first 64 CPUs are also published as gauges "telemetry.cpu.N" (for deepseek-monitor) */
  ds_stats *st = NULL;
  assert_int_equal(ds_stats_snapshot(&st, ctx), DS_OK);
  for (size_t i = 0; i < n && i < 64; i++) {
    char name[32];
    double v;
    snprintf(name, sizeof name, "telemetry.cpu.%zu", i);
    assert_int_equal(ds_stats_find(&v, st, name), DS_OK);
    assert_true(isnan(f[i]) ? isnan(v) : fabs(v - f[i]) < 1e-6);
  }
  double v;
  assert_int_equal(ds_stats_find(&v, st, "telemetry.cpu.64"), DS_ERR_NOT_FOUND);
  ds_stats_free(st);
  assert_int_equal(ds_telemetry_cores(f, &n, ctx, 1), DS_OK);
  assert_int_equal(n, 1);
  ds_context_destroy(ctx);
}

static void test_window_ring(void **state) {
  (void)state;
  ds_context *ctx = make_ctx(60000, 16, 1, NULL); /* the sampler stays asleep: no racing */
  for (int i = 0; i < 40; i++) assert_int_equal(ds_telemetry_sample_now(ctx), DS_OK);
  ds_telemetry_sample w[64];
  size_t n = 0;
  w[0].struct_size = sizeof w[0];
  assert_int_equal(ds_telemetry_window(w, &n, ctx, 64), DS_OK);
  assert_int_equal(n, 16); /* never more than the capacity */
  for (size_t i = 0; i < n; i++) assert_int_equal(w[i].seq, 41 - 16 + i); /* oldest first */
  assert_int_equal(latest(ctx).seq, 40);
  assert_int_equal(ds_telemetry_window(w, &n, ctx, 5), DS_OK);
  assert_int_equal(n, 5);
  assert_int_equal(w[0].seq, 36);
  assert_int_equal(w[4].seq, 40);

  /* An older, shorter structure: the stride is its struct_size, written back unchanged. */
  const size_t small = offsetof(ds_telemetry_sample, cpu_util);
  unsigned char *buf = malloc(3 * small + 8);
  assert_non_null(buf);
  memset(buf + 3 * small, 0x5a, 8); /* a guard just past three small elements */
  ds_telemetry_sample *sw = (ds_telemetry_sample *)buf;
  sw->struct_size = (uint32_t)small;
  assert_int_equal(ds_telemetry_window(sw, &n, ctx, 3), DS_OK);
  assert_int_equal(n, 3);
  for (size_t i = 0; i < 3; i++) {
    const ds_telemetry_sample *e = (const ds_telemetry_sample *)(buf + i * small);
    assert_int_equal(e->struct_size, small);
    assert_int_equal(e->seq, 38 + i);
  }
  for (size_t i = 0; i < 8; i++) assert_int_equal(buf[3 * small + i], 0x5a);
  free(buf);
  ds_context_destroy(ctx);
}

/* Long to short takes effect without waiting out the old period, and short to long too. */
static void test_period_change(void **state) {
  (void)state;
  ds_context *ctx = make_ctx(60000, 4096, 1, NULL);
  sleep_ms(300);
  assert_int_equal(latest(ctx).seq, 0);
  assert_int_equal(ds_context_set_param(ctx, DS_PARAM_TELEMETRY_PERIOD_MS, 20), DS_OK);
  sleep_ms(1000);
  uint64_t fast = latest(ctx).seq;
  assert_true(fast >= 10); /* about 40 nominally (the first wake-up may take 250 ms) */
  assert_int_equal(ds_context_set_param(ctx, DS_PARAM_TELEMETRY_PERIOD_MS, 60000), DS_OK);
  sleep_ms(100);
  uint64_t s0 = latest(ctx).seq;
  sleep_ms(500);
  assert_true(latest(ctx).seq <= s0 + 1); /* at most a tick that was under way */
  ds_context_destroy(ctx);
}

static double fake_depth(void *user) { return *(const double *)user; }

static void test_queue_depth_hook(void **state) {
  (void)state;
  ds_context *ctx = make_ctx(60000, 16, 1, NULL);
  ds_telemetry_sample s = latest(ctx);
  assert_false(s.valid & DS_TELEMETRY_QUEUE);
  assert_true(isnan(s.queue_depth));
  double depth = 7.0;
  ds__telemetry_set_queue_depth_fn(ctx, fake_depth, &depth);
  assert_int_equal(ds_telemetry_sample_now(ctx), DS_OK);
  s = latest(ctx);
  assert_true(s.valid & DS_TELEMETRY_QUEUE);
  assert_true(s.queue_depth == 7.0f);
  depth = NAN; /* a hook without an answer does not fake one */
  assert_int_equal(ds_telemetry_sample_now(ctx), DS_OK);
  assert_false(latest(ctx).valid & DS_TELEMETRY_QUEUE);
  ds__telemetry_set_queue_depth_fn(ctx, NULL, NULL);
  assert_int_equal(ds_telemetry_sample_now(ctx), DS_OK);
  s = latest(ctx);
  assert_false(s.valid & DS_TELEMETRY_QUEUE);
  assert_true(isnan(s.queue_depth));
  ds_context_destroy(ctx);
}

static int has_net(const ds_telemetry_sample *s) { return (s->valid & DS_TELEMETRY_NET) != 0; }
static int lacks_net(const ds_telemetry_sample *s) { return s->seq > 3 && !has_net(s); }

/* Only ever loopback: a listener of our own, then the same port closed. */
static void test_net_latency(void **state) {
  (void)state;
  int lfd = socket(AF_INET, SOCK_STREAM, 0);
  assert_true(lfd >= 0);
  struct sockaddr_in a;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  assert_int_equal(bind(lfd, (struct sockaddr *)&a, sizeof a), 0);
  assert_int_equal(listen(lfd, 128), 0);
  assert_int_equal(getsockname(lfd, (struct sockaddr *)&a, &len), 0);
  char peer[64];
  snprintf(peer, sizeof peer, "127.0.0.1:%u", (unsigned)ntohs(a.sin_port));

  ds_context *ctx = make_ctx(20, 4096, 1, peer);
  /* not probed at creation: the sample ds_context_create took (seq 0, the oldest: the 4096
   * kept are far more than this test records). Ticks since then may have probed already (a
   * slow, e.g. TSan, run can be a few ticks in by now), so latest() cannot tell. */
  ds_telemetry_sample *all = calloc(4096, sizeof *all);
  assert_non_null(all);
  all[0] = (ds_telemetry_sample)DS_TELEMETRY_SAMPLE_INIT;
  size_t n = 0;
  assert_int_equal(ds_telemetry_window(all, &n, ctx, 4096), DS_OK);
  assert_true(n >= 1);
  assert_int_equal(all[0].seq, 0);
  assert_false(all[0].valid & DS_TELEMETRY_NET);
  free(all);
  ds_telemetry_sample s = wait_for(ctx, has_net, 5000);
  assert_true(has_net(&s));
  assert_true(isfinite(s.net_latency_us) && s.net_latency_us > 0.0f);

  close(lfd); /* now refused: the value goes away rather than staying stale */
  s = wait_for(ctx, lacks_net, 5000);
  assert_false(has_net(&s));
  assert_true(isnan(s.net_latency_us));
  ds_context_destroy(ctx);
}

/* No GPU where the tests run: NaN and the bit clear, never a fake 0. */
static void test_gpu_unavailable_is_nan(void **state) {
  (void)state;
  void *nvml = dlopen("libnvidia-ml.so.1", RTLD_NOW | RTLD_LOCAL);
  ds_context *ctx = make_ctx(60000, 16, 1, NULL);
  ds_telemetry_sample s = latest(ctx);
  check_sample(&s);
  if (!nvml) {
    assert_false(s.valid & DS_TELEMETRY_GPU);
    assert_true(isnan(s.gpu_util) && isnan(s.gpu_mem_used));
  } else {
    dlclose(nvml);
  }
  ds_context_destroy(ctx);
}

static void test_destroy_is_fast(void **state) {
  (void)state;
  ds_context *ctx = make_ctx(60000, 16, 1, NULL);
  sleep_ms(50); /* the sampler is now asleep for a minute */
  uint64_t t0 = ds__now_ns();
  ds_context_destroy(ctx);
  /* Bounded far below the 60 s period; loose enough for a loaded, sanitized 2-core run. */
  assert_true(ds__now_ns() - t0 < 500000000u);
}

/* cmocka's assertions belong to the main thread: this one only counts failures. */
static void *sample_many(void *arg) {
  static ds__atomic_int failures;
  for (int i = 0; i < 50; i++)
    if (ds_telemetry_sample_now(arg) != DS_OK) ds__fetch_add(&failures, 1);
  return (void *)(intptr_t)ds__load(&failures);
}

/* Callers and the sampler taking samples at once still give one gap-free, ordered series. */
static void test_concurrent_sampling(void **state) {
  (void)state;
  ds_context *ctx = make_ctx(2, 4096, 1, NULL);
  pthread_t th[2];
  for (int i = 0; i < 2; i++) assert_int_equal(pthread_create(&th[i], NULL, sample_many, ctx), 0);
  for (int i = 0; i < 2; i++) {
    void *failures;
    pthread_join(th[i], &failures);
    assert_null(failures);
  }
  static ds_telemetry_sample w[4096];
  size_t n = 0;
  w[0].struct_size = sizeof w[0];
  assert_int_equal(ds_telemetry_window(w, &n, ctx, 4096), DS_OK);
  assert_true(n >= 101);
  for (size_t i = 1; i < n; i++) {
    assert_int_equal(w[i].seq, w[i - 1].seq + 1);
    assert_true(w[i].time_ns > w[i - 1].time_ns);
  }
  ds_context_destroy(ctx);
}

/* ---------------------------------------------------------------- failure paths */

typedef struct failing_alloc {
  long budget; /* allocations left before failing */
  long live;
} failing_alloc;

static void *fa_alloc(void *user, size_t size) {
  failing_alloc *fa = user;
  if (fa->budget-- <= 0) return NULL;
  fa->live++;
  return malloc(size);
}

static void fa_free(void *user, void *p) {
  failing_alloc *fa = user;
  if (p) fa->live--;
  free(p);
}

/* Every allocation of creation failing in turn: a clean error, nothing left allocated. */
static void test_create_out_of_memory(void **state) {
  (void)state;
  failing_alloc fa;
  ds_allocator al = {fa_alloc, fa_free, &fa};
  ds_context_options o = DS_CONTEXT_OPTIONS_INIT;
  o.flags = DS_CONTEXT_NO_ENV;
  o.allocator = &al;
  o.telemetry_peer = "127.0.0.1:9"; /* never probed: destroyed before the first tick */
  o.log_level = DS_LOG_OFF;
  for (long budget = 0;; budget++) {
    fa.budget = budget;
    fa.live = 0;
    ds_context *ctx = NULL;
    ds_status st = ds_context_create(&ctx, &o);
    if (st == DS_OK) {
      ds_context_destroy(ctx);
      assert_int_equal(fa.live, 0);
      break;
    }
    assert_int_equal(st, DS_ERR_NO_MEMORY);
    assert_null(ctx);
    assert_int_equal(fa.live, 0);
    assert_true(budget < 1000);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_cpu_reader_deltas),
      cmocka_unit_test(test_mem_and_psi_readers),
      cmocka_unit_test(test_peer_parsing),
      cmocka_unit_test(test_null_args),
      cmocka_unit_test(test_disabled),
      cmocka_unit_test(test_bad_struct_size),
      cmocka_unit_test(test_first_sample),
      cmocka_unit_test(test_samples_over_a_second),
      cmocka_unit_test(test_cores),
      cmocka_unit_test(test_window_ring),
      cmocka_unit_test(test_period_change),
      cmocka_unit_test(test_queue_depth_hook),
      cmocka_unit_test(test_net_latency),
      cmocka_unit_test(test_gpu_unavailable_is_nan),
      cmocka_unit_test(test_destroy_is_fast),
      cmocka_unit_test(test_concurrent_sampling),
      cmocka_unit_test(test_create_out_of_memory),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
