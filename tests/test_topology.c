/* Tests of the topology module: hwloc summary and NUMA nodes, struct_size checks, CUDA devices
 * (none here), the process-wide topology shared by many contexts, and the CUDA self-test. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "build_config.h"
#include "cuda_selftest.h"
#include "topology_internal.h"

/* bench/gpu/check.sh sets DS_REQUIRE_GPU=1: there, a missing GPU is a failure, not a skip. */
static int gpu_required(void) {
  const char *v = getenv("DS_REQUIRE_GPU");
  return v && strcmp(v, "1") == 0;
}

/* A context without the background threads and files the topology does not need. */
static ds_status create_context(ds_context **ctx) {
  ds_param_value params[] = {{DS_PARAM_TELEMETRY_ENABLE, 0, 0}, {DS_PARAM_STATS_FILE, 0, 0}};
  ds_context_options o = DS_CONTEXT_OPTIONS_INIT;
  o.flags = DS_CONTEXT_NO_ENV;
  o.params = params;
  o.nparams = 2;
  return ds_context_create(ctx, &o);
}

static ds_context *new_context(void) {
  ds_context *ctx = NULL;
  assert_int_equal(create_context(&ctx), DS_OK);
  return ctx;
}

static int setup(void **state) {
  *state = new_context();
  return 0;
}

static int teardown(void **state) {
  ds_context_destroy(*state);
  return 0;
}

static void test_summary(void **state) {
  ds_topology_info t = DS_TOPOLOGY_INFO_INIT;
  assert_int_equal(ds_topology_get(&t, *state), DS_OK);
  assert_int_equal(t.struct_size, sizeof t);
  assert_true(t.packages >= 1);
  assert_true(t.numa_nodes >= 1);
  assert_true(t.cores >= 1);
  assert_true(t.pus >= t.cores);
  assert_true(t.total_memory_bytes > 0);
  for (int i = 0; i < DS_TOPOLOGY_CACHE_LEVELS; i++)
    assert_int_equal(t.cache_bytes[i] > 0, t.cache_count[i] > 0);
  printf("# %d package(s), %d NUMA node(s), %d cores, %d PUs, %llu MiB, caches L1 %llu x%d "
         "L2 %llu x%d L3 %llu x%d L4 %llu x%d\n",
         t.packages, t.numa_nodes, t.cores, t.pus,
         (unsigned long long)(t.total_memory_bytes >> 20), (unsigned long long)t.cache_bytes[0],
         t.cache_count[0], (unsigned long long)t.cache_bytes[1], t.cache_count[1],
         (unsigned long long)t.cache_bytes[2], t.cache_count[2],
         (unsigned long long)t.cache_bytes[3], t.cache_count[3]);
}

/* Some VMs and containers expose no cache information; where Linux has it, hwloc must too. */
static void test_caches(void **state) {
  if (access("/sys/devices/system/cpu/cpu0/cache/index0", F_OK) != 0) {
    printf("# skipped: this machine exposes no cache information\n");
    return;
  }
  ds_topology_info t = DS_TOPOLOGY_INFO_INIT;
  assert_int_equal(ds_topology_get(&t, *state), DS_OK);
  assert_true(t.cache_bytes[0] > 0 || t.cache_bytes[1] > 0 || t.cache_bytes[2] > 0);
}

static void test_numa_nodes(void **state) {
  ds_topology_info t = DS_TOPOLOGY_INFO_INIT;
  assert_int_equal(ds_topology_get(&t, *state), DS_OK);
  uint64_t mem = 0;
  int32_t cores = 0, pus = 0;
  for (int32_t i = 0; i < t.numa_nodes; i++) {
    ds_numa_node_info n = DS_NUMA_NODE_INFO_INIT;
    assert_int_equal(ds_topology_numa_node(&n, *state, i), DS_OK);
    assert_true(n.os_index >= 0);
    assert_true(n.pus >= n.cores);
    mem += n.memory_bytes;
    cores += n.cores;
    pus += n.pus;
  }
  assert_true(mem > 0 && mem <= t.total_memory_bytes);
  assert_int_equal(cores, t.cores);
  assert_int_equal(pus, t.pus);
}

static void test_numa_not_found(void **state) {
  ds_topology_info t = DS_TOPOLOGY_INFO_INIT;
  assert_int_equal(ds_topology_get(&t, *state), DS_OK);
  ds_numa_node_info n = DS_NUMA_NODE_INFO_INIT;
  assert_int_equal(ds_topology_numa_node(&n, *state, t.numa_nodes), DS_ERR_NOT_FOUND);
  assert_int_equal(ds_topology_numa_node(&n, *state, -1), DS_ERR_NOT_FOUND);
  assert_non_null(strstr(ds_context_last_error(*state), "no NUMA node -1"));
}

static void test_struct_size(void **state) {
  ds_topology_info t = DS_TOPOLOGY_INFO_INIT;
  t.struct_size = 8;
  assert_int_equal(ds_topology_get(&t, *state), DS_ERR_ABI);
  t.struct_size = sizeof t + 8;
  assert_int_equal(ds_topology_get(&t, *state), DS_ERR_ABI);
  ds_numa_node_info n = DS_NUMA_NODE_INFO_INIT;
  n.struct_size = 0;
  assert_int_equal(ds_topology_numa_node(&n, *state, 0), DS_ERR_ABI);
  ds_cuda_device_info d = DS_CUDA_DEVICE_INFO_INIT;
  d.struct_size = sizeof d - 1;
  assert_int_equal(ds_topology_cuda_device(&d, *state, 0), DS_ERR_ABI);
  assert_int_equal(ds_topology_get(NULL, *state), DS_ERR_INVALID_ARG);
  t.struct_size = sizeof t;
  assert_int_equal(ds_topology_get(&t, NULL), DS_ERR_INVALID_ARG);
  assert_int_equal(ds_topology_numa_node(NULL, *state, 0), DS_ERR_INVALID_ARG);
  assert_int_equal(ds_topology_cuda_device(NULL, *state, 0), DS_ERR_INVALID_ARG);
}

/* No GPU where the tests run; on a GPU machine the devices must be described. */
static void test_cuda_devices(void **state) {
  ds_topology_info t = DS_TOPOLOGY_INFO_INIT;
  assert_int_equal(ds_topology_get(&t, *state), DS_OK);
  ds_cuda_device_info d = DS_CUDA_DEVICE_INFO_INIT;
  for (int32_t i = 0; i < t.cuda_devices; i++) {
    assert_int_equal(ds_topology_cuda_device(&d, *state, i), DS_OK);
    assert_int_equal(d.index, i);
    assert_true(d.cc_major > 0 && d.sm_count > 0 && d.memory_bytes > 0);
    printf("# CUDA %d: %s, sm_%d%d, %d SMs, %llu MiB\n", i, d.name, d.cc_major, d.cc_minor,
           d.sm_count, (unsigned long long)(d.memory_bytes >> 20));
  }
  if (t.cuda_devices == 0) printf("# no CUDA device on this machine\n");
  if (gpu_required()) assert_true(t.cuda_devices >= 1);
  assert_int_equal(ds_topology_cuda_device(&d, *state, t.cuda_devices), DS_ERR_NOT_FOUND);
  char want[64];
  snprintf(want, sizeof want, "no CUDA device %d (%d found)", t.cuda_devices, t.cuda_devices);
  assert_non_null(strstr(ds_context_last_error(*state), want));
}

static void test_shared_topology(void **state) {
  (void)state;
  ds_context *a = new_context(), *b = new_context();
  hwloc_topology_t ta = ds__topology_acquire(a);
  assert_non_null(ta);
  assert_ptr_equal(ds__topology_acquire(b), ta);
  assert_ptr_equal(ds__topology_acquire(a), ta); /* a second call takes no second reference */
  ds_context_destroy(a);
  ds_topology_info t = DS_TOPOLOGY_INFO_INIT;
  assert_int_equal(ds_topology_get(&t, b), DS_OK); /* still loaded for b */
  assert_int_equal(ds__topology_refcount(), 1);
  ds_context_destroy(b);
  assert_int_equal(ds__topology_refcount(), 0);
}

/* Contexts come and go on several threads; the topology is loaded and freed as the count
 * passes through zero. ASan builds check nothing is used after free. cmocka's asserts may not
 * run off the main thread, so workers count failures instead. */
static void *churn(void *arg) {
  int *failures = arg;
  for (int i = 0; i < 25; i++) {
    ds_context *ctx = NULL;
    if (create_context(&ctx) != DS_OK) {
      (*failures)++;
      continue;
    }
    ds_topology_info t = DS_TOPOLOGY_INFO_INIT;
    ds_numa_node_info n = DS_NUMA_NODE_INFO_INIT;
    *failures += ds_topology_get(&t, ctx) != DS_OK;
    *failures += ds_topology_numa_node(&n, ctx, 0) != DS_OK;
    ds_context_destroy(ctx);
  }
  return NULL;
}

static void test_many_contexts(void **state) {
  (void)state;
  pthread_t th[4];
  int failures[4] = {0};
  for (int i = 0; i < 4; i++)
    assert_int_equal(pthread_create(&th[i], NULL, churn, &failures[i]), 0);
  for (int i = 0; i < 4; i++) pthread_join(th[i], NULL);
  for (int i = 0; i < 4; i++) assert_int_equal(failures[i], 0);
  ds_context *never = new_context(); /* never asks: holds no reference, releases none */
  ds_context_destroy(never);
  assert_int_equal(ds__topology_refcount(), 0); /* every reference given back: unloaded */
}

static void test_cuda_selftest(void **state) {
  double gbps = -1.0;
  ds_status st = ds__cuda_selftest(*state, 0, &gbps);
  if (DS_HAVE_CUDA && st == DS_OK) {
    assert_true(gbps > 0.0);
    printf("# CUDA self-test on device 0: %.1f GB/s\n", gbps);
    return;
  }
  if (gpu_required()) fail_msg("DS_REQUIRE_GPU=1 but the CUDA self-test gave %s: %s",
                               ds_status_name(st), ds_context_last_error(*state));
  assert_int_equal(st, DS_HAVE_CUDA ? DS_ERR_UNAVAILABLE : DS_ERR_UNSUPPORTED);
  printf("# CUDA self-test skipped on this machine: %s (%s)\n", ds_status_name(st),
         ds_context_last_error(*state));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_summary, setup, teardown),
      cmocka_unit_test_setup_teardown(test_caches, setup, teardown),
      cmocka_unit_test_setup_teardown(test_numa_nodes, setup, teardown),
      cmocka_unit_test_setup_teardown(test_numa_not_found, setup, teardown),
      cmocka_unit_test_setup_teardown(test_struct_size, setup, teardown),
      cmocka_unit_test_setup_teardown(test_cuda_devices, setup, teardown),
      cmocka_unit_test(test_shared_topology),
      cmocka_unit_test(test_many_contexts),
      cmocka_unit_test_setup_teardown(test_cuda_selftest, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
