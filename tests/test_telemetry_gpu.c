/* Per-GPU telemetry stats (telemetry.gpu<N>.util_pct / mem_used_bytes / mem_total_bytes)
 * against the stand-in NVML of tests/fake_nvml, which ctest puts first on LD_LIBRARY_PATH
 * (DS_TEST_FAKE_NVML=1 says so; run by hand without it, the test says it is skipped). */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "deepseek.h"
#include "test_util.h"

static double stat_of(const ds_stats *s, const char *name) {
  double v = NAN;
  return ds_stats_find(&v, s, name) == DS_OK ? v : NAN;
}

static void test_per_gpu_stats(void **state) {
  (void)state;
  if (!getenv("DS_TEST_FAKE_NVML")) {
    printf("skipped: run through ctest, which loads the stand-in NVML\n");
    return;
  }
  ds_param_value pv[1] = {{DS_PARAM_TELEMETRY_ENABLE, 0, 1}};
  ds_context *ctx = ds_test_context(pv, 1); /* the first sample is taken at creation */
  ds_telemetry_sample t;
  t.struct_size = sizeof t;
  assert_int_equal(ds_telemetry_latest(&t, ctx), DS_OK);
  assert_true(t.valid & DS_TELEMETRY_GPU);
  assert_true(fabs(t.gpu_util - 0.5) < 1e-6 && fabs(t.gpu_mem_used - 0.5) < 1e-6);
  ds_stats *s = NULL;
  assert_int_equal(ds_stats_snapshot(&s, ctx), DS_OK);
  assert_true(stat_of(s, "telemetry.gpu0.util_pct") == 30);
  assert_true(stat_of(s, "telemetry.gpu1.util_pct") == 70);
  assert_true(stat_of(s, "telemetry.gpu0.mem_used_bytes") == 1073741824.0);
  assert_true(stat_of(s, "telemetry.gpu1.mem_used_bytes") == 3221225472.0);
  assert_true(stat_of(s, "telemetry.gpu1.mem_total_bytes") == 4294967296.0);
  assert_true(isnan(stat_of(s, "telemetry.gpu2.util_pct"))); /* two devices only */
  ds_stat st;
  for (size_t i = 0; i < ds_stats_count(s); i++)
    if (ds_stats_at(&st, s, i) == DS_OK && st.name[0] == 't' && strstr(st.name, ".gpu0."))
      assert_int_equal(st.kind, DS_STAT_GAUGE);
  ds_stats_free(s);
  ds_context_destroy(ctx);
}

int main(void) {
  const struct CMUnitTest tests[] = {cmocka_unit_test(test_per_gpu_stats)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}
