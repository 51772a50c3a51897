/* Tests of the compute fabric's devices and buffers on the CPU: enumeration, the MSI protocol
 * seen from CPU devices and from a registered (test) backend, stats, concurrency rules, bad
 * input and allocator faults. OpenCL and CUDA have their own files. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fabric_internal.h"
#include "test_util.h"

/* ---- helpers ---- */

static ds_context *new_ctx_alloc(const ds_allocator *a) {
  ds_context_options o = DS_CONTEXT_OPTIONS_INIT;
  o.flags = DS_CONTEXT_NO_ENV;
  ds_param_value quiet[] = {{DS_PARAM_TELEMETRY_ENABLE, 0, 0}, {DS_PARAM_STATS_FILE, 0, 0},
                            {DS_PARAM_FABRIC_OPENCL, 0, 0}};
  o.params = quiet;
  o.nparams = 3;
  o.allocator = a;
  ds_context *ctx = NULL;
  assert_int_equal(ds_context_create(&ctx, &o), DS_OK);
  return ctx;
}

static ds_context *new_ctx(void) { return new_ctx_alloc(NULL); }

static void assert_error_mentions(ds_context *ctx, const char *a, const char *b) {
  const char *msg = ds_context_last_error(ctx);
  assert_non_null(strstr(msg, a));
  if (b) assert_non_null(strstr(msg, b));
}

/* ---- a fake device backend: separate memory, counts its calls ---- */

struct fake {
  int allocs, frees, copies_in, copies_out, fail_alloc, alias;
  int peers;       /* direct copies made */
  int refuse_peer; /* copy_peer answers DS_ERR_UNSUPPORTED */
};

static ds_status fake_describe(void *user, int32_t dev, ds_device_info *info) {
  struct fake *f = user;
  info->kind = DS_FABRIC_DEVICE_OTHER;
  info->caps = f->alias ? DS_DEVICE_CAP_MAP_HOST : 0;
  info->memory_bytes = 1 << 20;
  snprintf(info->name, sizeof info->name, "fake:%d", (int)dev);
  return DS_OK;
}

static ds_status fake_alloc(void *user, int32_t dev, size_t size, void *host, void **mem,
                            int *aliased, char *msg, size_t msg_size) {
  struct fake *f = user;
  (void)dev;
  if (f->fail_alloc) {
    snprintf(msg, msg_size, "fake device full");
    return DS_ERR_NO_SPACE;
  }
  f->allocs++;
  *aliased = f->alias && host;
  *mem = *aliased ? host : malloc(size);
  return DS_OK;
}

static void fake_free(void *user, int32_t dev, void *mem) {
  struct fake *f = user;
  (void)dev;
  f->frees++;
  if (!f->alias) free(mem);
}

static ds_status fake_in(void *user, int32_t dev, void *mem, size_t off, const void *host,
                         size_t n, void **event, char *msg, size_t msg_size) {
  struct fake *f = user;
  (void)dev, (void)msg, (void)msg_size;
  f->copies_in++;
  memcpy((char *)mem + off, host, n);
  if (event) *event = NULL;
  return DS_OK;
}

static ds_status fake_out(void *user, int32_t dev, void *host, void *mem, size_t off, size_t n,
                          void **event, char *msg, size_t msg_size) {
  struct fake *f = user;
  (void)dev, (void)msg, (void)msg_size;
  f->copies_out++;
  memcpy(host, (char *)mem + off, n);
  if (event) *event = NULL;
  return DS_OK;
}

static ds_status fake_peer(void *user, int32_t dst_dev, void *dst, int32_t src_dev, void *src,
                           size_t n, char *msg, size_t msg_size) {
  struct fake *f = user;
  (void)dst_dev, (void)src_dev, (void)msg, (void)msg_size;
  if (f->refuse_peer) return DS_ERR_UNSUPPORTED;
  f->peers++;
  memcpy(dst, src, n);
  return DS_OK;
}

/* The fake's table; copy_peer only when @p peer. */
static ds_fabric_backend fake_table(const char *name, int32_t ndev, int peer) {
  ds_fabric_backend b;
  memset(&b, 0, sizeof b);
  b.struct_size = sizeof b;
  b.name = name;
  b.device_count = ndev;
  b.describe = fake_describe;
  b.alloc = fake_alloc;
  b.free = fake_free;
  b.copy_in = fake_in;
  b.copy_out = fake_out;
  b.copy_peer = peer ? fake_peer : NULL;
  return b;
}

static int32_t add_fake(ds_context *ctx, struct fake *f, int32_t ndev) {
  ds_fabric_backend b = fake_table("fake", ndev, 0);
  int32_t first = -1;
  assert_int_equal(ds_fabric_backend_register(&first, ctx, &b, f), DS_OK);
  return first;
}

/* ---- devices ---- */

static void test_devices_cpu_first(void **state) {
  (void)state;
  ds_context *ctx = new_ctx();
  int32_t n = 0, spaces = 0;
  assert_int_equal(ds_fabric_device_count(&n, ctx), DS_OK);
  assert_true(n >= 1);
  ds_topology_info topo = DS_TOPOLOGY_INFO_INIT;
  assert_int_equal(ds_topology_get(&topo, ctx), DS_OK);
  ds_device_info info = DS_DEVICE_INFO_INIT;
  assert_int_equal(ds_fabric_device_info(&info, ctx, 0), DS_OK);
  assert_int_equal(info.kind, DS_FABRIC_DEVICE_CPU);
  assert_int_equal(info.index, 0);
  assert_int_equal(info.numa_node, 0);
  assert_string_equal(info.backend, "cpu");
  assert_true(info.caps & DS_DEVICE_CAP_HOST_MEMORY);
  assert_true(info.compute_units >= 1);
  int32_t ncpu = 0;
  for (int32_t i = 0; i < n; i++) {
    assert_int_equal(ds_fabric_device_info(&info, ctx, i), DS_OK);
    assert_int_equal(info.index, i);
    ncpu += info.kind == DS_FABRIC_DEVICE_CPU;
  }
  assert_int_equal(ncpu, topo.numa_nodes); /* one CPU device per NUMA node */
  assert_int_equal(ds_fabric_memory_space_count(&spaces, ctx), DS_OK);
  assert_int_equal(spaces, n);
  int32_t idx = -1;
  assert_int_equal(ds_fabric_device_find(&idx, ctx, DS_FABRIC_DEVICE_CPU, 0), DS_OK);
  assert_int_equal(idx, 0);
  /* The OpenCL probe is off in this context; no GPU here means no CUDA device either, but on
   * a GPU machine there may be one: only check the lookup's failure on a kind surely absent. */
  assert_int_equal(ds_fabric_device_find(&idx, ctx, DS_FABRIC_DEVICE_OPENCL, 0), DS_ERR_NOT_FOUND);
  assert_int_equal(ds_fabric_device_find(&idx, ctx, DS_FABRIC_DEVICE_CPU, 99), DS_ERR_NOT_FOUND);
  assert_int_equal(ds_fabric_device_info(&info, ctx, n), DS_ERR_NOT_FOUND);
  assert_int_equal(ds_fabric_device_info(&info, ctx, -1), DS_ERR_NOT_FOUND);
  info.struct_size = 8;
  assert_int_equal(ds_fabric_device_info(&info, ctx, 0), DS_ERR_ABI);
  assert_int_equal(ds_fabric_device_count(NULL, ctx), DS_ERR_INVALID_ARG);
  assert_int_equal(ds_fabric_device_count(&n, NULL), DS_ERR_INVALID_ARG);
  ds_context_destroy(ctx);
}

static void test_backend_register_checks(void **state) {
  (void)state;
  ds_context *ctx = new_ctx();
  struct fake f = {0};
  ds_fabric_backend b;
  memset(&b, 0, sizeof b);
  b.struct_size = sizeof b;
  b.name = "broken";
  b.device_count = 1;
  assert_int_equal(ds_fabric_backend_register(NULL, ctx, &b, &f), DS_ERR_INVALID_ARG);
  assert_error_mentions(ctx, "broken", "required");
  b.struct_size = 4;
  assert_int_equal(ds_fabric_backend_register(NULL, ctx, &b, &f), DS_ERR_ABI);
  assert_int_equal(ds_fabric_backend_register(NULL, ctx, NULL, &f), DS_ERR_INVALID_ARG);
  int32_t n0 = 0, n1 = 0;
  assert_int_equal(ds_fabric_device_count(&n0, ctx), DS_OK);
  int32_t first = add_fake(ctx, &f, 2);
  assert_int_equal(first, n0);
  assert_int_equal(ds_fabric_device_count(&n1, ctx), DS_OK);
  assert_int_equal(n1, n0 + 2);
  ds_device_info info = DS_DEVICE_INFO_INIT;
  assert_int_equal(ds_fabric_device_info(&info, ctx, first + 1), DS_OK);
  assert_string_equal(info.name, "fake:1");
  assert_string_equal(info.backend, "fake");
  assert_int_equal(info.kind, DS_FABRIC_DEVICE_OTHER);
  assert_int_equal(info.memory_space, first + 1);
  /* Too many devices for the table. */
  memset(&b, 0, sizeof b);
  b = (ds_fabric_backend){sizeof b, "huge", 100, fake_describe, fake_alloc, fake_free, fake_in,
                          fake_out, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL};
  assert_int_equal(ds_fabric_backend_register(NULL, ctx, &b, &f), DS_ERR_INVALID_ARG);
  ds_context_destroy(ctx);
}

/* ---- buffers on the CPU ---- */

static void test_buffer_cpu_roundtrip(void **state) {
  (void)state;
  ds_context *ctx = new_ctx();
  ds_buffer_options o = DS_BUFFER_OPTIONS_INIT;
  o.name = "weights";
  ds_buffer *b = NULL;
  assert_int_equal(ds_buffer_create(&b, ctx, 1000, &o), DS_OK);
  assert_int_equal(ds_buffer_size(b), 1000);
  assert_string_equal(ds_buffer_name(b), "weights");
  ds_replica_state st;
  assert_int_equal(ds_buffer_state(&st, b, 0), DS_OK);
  assert_int_equal(st, DS_REPLICA_MODIFIED);
  unsigned char *p = NULL;
  assert_int_equal(ds_buffer_acquire((void **)&p, b, 0, DS_ACCESS_READ), DS_OK);
  assert_non_null(p);
  assert_int_equal((uintptr_t)p % 4096, 0); /* page aligned, for zero-copy */
  for (int i = 0; i < 1000; i++) assert_int_equal(p[i], 0);
  unsigned char *q = NULL; /* readers share */
  assert_int_equal(ds_buffer_acquire((void **)&q, b, 0, DS_ACCESS_READ), DS_OK);
  assert_ptr_equal(p, q);
  assert_int_equal(ds_buffer_release(b, 0), DS_OK);
  assert_int_equal(ds_buffer_release(b, 0), DS_OK);
  assert_int_equal(ds_buffer_acquire((void **)&p, b, 0, DS_ACCESS_WRITE), DS_OK);
  memset(p, 7, 1000);
  assert_int_equal(ds_buffer_release(b, 0), DS_OK);
  assert_int_equal(ds_buffer_destroy(b), DS_OK);
  assert_int_equal(ds_buffer_destroy(NULL), DS_OK);

  unsigned char host[64];
  memset(host, 3, sizeof host);
  assert_int_equal(ds_buffer_register(&b, ctx, host, sizeof host, NULL), DS_OK);
  assert_string_equal(ds_buffer_name(b), "buffer");
  assert_int_equal(ds_buffer_acquire((void **)&p, b, 0, DS_ACCESS_RW), DS_OK);
  assert_ptr_equal(p, host); /* registered memory is used in place */
  assert_int_equal(ds_buffer_release(b, 0), DS_OK);
  assert_int_equal(ds_buffer_destroy(b), DS_OK);
  assert_int_equal(ds_test_stat(ctx, "fabric.copies"), 0);
  ds_context_destroy(ctx);
}

/* MSI through a device with its own memory: the fake backend. */
static void test_msi_with_device_memory(void **state) {
  (void)state;
  ds_context *ctx = new_ctx();
  struct fake f = {0};
  int32_t dev = add_fake(ctx, &f, 2);
  ds_buffer *b = NULL;
  assert_int_equal(ds_buffer_create(&b, ctx, 256, NULL), DS_OK);
  unsigned char *h = NULL, *d = NULL, *d2 = NULL;
  ds_replica_state st;
  /* Host writes, device reads: one copy in, both Shared. */
  assert_int_equal(ds_buffer_acquire((void **)&h, b, 0, DS_ACCESS_WRITE), DS_OK);
  for (int i = 0; i < 256; i++) h[i] = (unsigned char)i;
  assert_int_equal(ds_buffer_release(b, 0), DS_OK);
  assert_int_equal(ds_buffer_acquire((void **)&d, b, dev, DS_ACCESS_READ), DS_OK);
  assert_ptr_not_equal(d, h);
  assert_int_equal(d[200], 200);
  assert_int_equal(f.copies_in, 1);
  assert_int_equal(ds_buffer_state(&st, b, dev), DS_OK);
  assert_int_equal(st, DS_REPLICA_SHARED);
  assert_int_equal(ds_buffer_state(&st, b, 0), DS_OK);
  assert_int_equal(st, DS_REPLICA_SHARED);
  assert_int_equal(ds_buffer_release(b, dev), DS_OK);
  /* Reading again on the device copies nothing. */
  assert_int_equal(ds_buffer_acquire((void **)&d, b, dev, DS_ACCESS_READ), DS_OK);
  assert_int_equal(ds_buffer_release(b, dev), DS_OK);
  assert_int_equal(f.copies_in, 1);
  /* Device writes: Modified there, Invalid elsewhere; no copy for WRITE. */
  assert_int_equal(ds_buffer_acquire((void **)&d, b, dev, DS_ACCESS_RW), DS_OK);
  memset(d, 0xAB, 256);
  assert_int_equal(ds_buffer_release(b, dev), DS_OK);
  assert_int_equal(ds_buffer_state(&st, b, dev), DS_OK);
  assert_int_equal(st, DS_REPLICA_MODIFIED);
  assert_int_equal(ds_buffer_state(&st, b, 0), DS_OK);
  assert_int_equal(st, DS_REPLICA_INVALID);
  assert_int_equal(ds__buffer_valid_spaces(b), (uint64_t)1 << dev);
  /* Second device reads: staged through the host (copy out, copy in). */
  assert_int_equal(ds_buffer_acquire((void **)&d2, b, dev + 1, DS_ACCESS_READ), DS_OK);
  assert_int_equal(d2[17], 0xAB);
  assert_int_equal(f.copies_out, 1);
  assert_int_equal(f.copies_in, 2);
  assert_int_equal(ds_buffer_release(b, dev + 1), DS_OK);
  /* Host reads: already staged, no more copies. */
  assert_int_equal(ds_buffer_acquire((void **)&h, b, 0, DS_ACCESS_READ), DS_OK);
  assert_int_equal(h[5], 0xAB);
  assert_int_equal(ds_buffer_release(b, 0), DS_OK);
  assert_int_equal(f.copies_out, 1);
  /* Host writes: both device replicas Invalid. */
  assert_int_equal(ds_buffer_acquire((void **)&h, b, 0, DS_ACCESS_WRITE), DS_OK);
  memset(h, 1, 256);
  assert_int_equal(ds_buffer_release(b, 0), DS_OK);
  assert_int_equal(ds_buffer_state(&st, b, dev), DS_OK);
  assert_int_equal(st, DS_REPLICA_INVALID);
  assert_int_equal(ds_buffer_state(&st, b, dev + 1), DS_OK);
  assert_int_equal(st, DS_REPLICA_INVALID);
  assert_int_equal(ds_buffer_acquire((void **)&d, b, dev, DS_ACCESS_READ), DS_OK);
  assert_int_equal(d[100], 1);
  assert_int_equal(ds_buffer_release(b, dev), DS_OK);
  /* Stats: 3 copies in + 1 out of 256 bytes. */
  assert_true(ds_test_stat(ctx, "fabric.copies") == 4);
  assert_true(ds_test_stat(ctx, "fabric.bytes_moved") == 4 * 256);
  char name[64];
  snprintf(name, sizeof name, "fabric.dev%d.copies", (int)dev);
  assert_true(ds_test_stat(ctx, name) == 3); /* 2 in + 1 out */
  assert_int_equal(ds_buffer_destroy(b), DS_OK);
  assert_int_equal(f.allocs, 2);
  assert_int_equal(f.frees, 2);
  ds_context_destroy(ctx);
}

/* A device that maps host memory: no copies at all, counted as avoided. */
static void test_zero_copy_alias(void **state) {
  (void)state;
  ds_context *ctx = new_ctx();
  struct fake f = {0};
  f.alias = 1;
  int32_t dev = add_fake(ctx, &f, 1);
  ds_buffer *b = NULL;
  assert_int_equal(ds_buffer_create(&b, ctx, 128, NULL), DS_OK);
  unsigned char *h = NULL, *d = NULL;
  assert_int_equal(ds_buffer_acquire((void **)&h, b, 0, DS_ACCESS_WRITE), DS_OK);
  memset(h, 9, 128);
  assert_int_equal(ds_buffer_release(b, 0), DS_OK);
  assert_int_equal(ds_buffer_acquire((void **)&d, b, dev, DS_ACCESS_RW), DS_OK);
  assert_ptr_equal(d, h);
  d[0] = 42;
  assert_int_equal(ds_buffer_release(b, dev), DS_OK);
  assert_int_equal(ds_buffer_acquire((void **)&h, b, 0, DS_ACCESS_READ), DS_OK);
  assert_int_equal(h[0], 42);
  assert_int_equal(ds_buffer_release(b, 0), DS_OK);
  assert_int_equal(f.copies_in + f.copies_out, 0);
  assert_true(ds_test_stat(ctx, "fabric.copies") == 0);
  assert_true(ds_test_stat(ctx, "fabric.copies_avoided") == 2);
  assert_int_equal(ds_buffer_destroy(b), DS_OK);
  /* The same with zero-copy refused by the buffer: copies. */
  ds_buffer_options o = DS_BUFFER_OPTIONS_INIT;
  o.flags = DS_BUFFER_NO_ZERO_COPY;
  f.alias = 0;
  assert_int_equal(ds_buffer_create(&b, ctx, 128, &o), DS_OK);
  assert_int_equal(ds_buffer_acquire((void **)&d, b, dev, DS_ACCESS_READ), DS_OK);
  assert_int_equal(ds_buffer_release(b, dev), DS_OK);
  assert_int_equal(f.copies_in, 1);
  assert_int_equal(ds_buffer_destroy(b), DS_OK);
  ds_context_destroy(ctx);
}

static ds_status cpu_like_describe(void *user, int32_t dev, ds_device_info *info) {
  (void)user;
  info->kind = DS_FABRIC_DEVICE_CPU;
  info->caps = DS_DEVICE_CAP_HOST_MEMORY;
  info->numa_node = 1;
  snprintf(info->name, sizeof info->name, "cpu-like:%d", (int)dev);
  return DS_OK;
}

/* A second CPU memory space (as another NUMA node is): it reads the home node's bytes in
 * place, no copy, counted as avoided; the transfer cost between host spaces is 0. */
static void test_other_cpu_space_reads_in_place(void **state) {
  (void)state;
  ds_context *ctx = new_ctx();
  struct fake f = {0};
  ds_fabric_backend bk;
  memset(&bk, 0, sizeof bk);
  bk = (ds_fabric_backend){sizeof bk, "cpulike", 1, cpu_like_describe, fake_alloc, fake_free,
                           fake_in, fake_out, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL};
  int32_t dev = -1;
  assert_int_equal(ds_fabric_backend_register(&dev, ctx, &bk, &f), DS_OK);
  ds_buffer *b = NULL;
  assert_int_equal(ds_buffer_create(&b, ctx, 64, NULL), DS_OK);
  void *h = NULL, *p = NULL;
  assert_int_equal(ds_buffer_acquire(&h, b, 0, DS_ACCESS_READ), DS_OK);
  assert_int_equal(ds_buffer_acquire(&p, b, dev, DS_ACCESS_READ), DS_OK);
  assert_ptr_equal(p, h);
  assert_int_equal(ds_buffer_release(b, dev), DS_OK);
  assert_int_equal(ds_buffer_release(b, 0), DS_OK);
  assert_int_equal(f.allocs + f.copies_in + f.copies_out, 0);
  assert_true(ds_test_stat(ctx, "fabric.copies_avoided") == 1);
  ds_device_info info = DS_DEVICE_INFO_INIT;
  assert_int_equal(ds_fabric_device_info(&info, ctx, dev), DS_OK);
  assert_true(ds__fabric_transfer_cost(ctx, 0, info.memory_space, 1 << 20) == 0);
  assert_int_equal(ds_buffer_destroy(b), DS_OK);
  ds_context_destroy(ctx);
}

/* ---- concurrency rules and bad input ---- */

static void test_writer_is_exclusive(void **state) {
  (void)state;
  ds_context *ctx = new_ctx();
  struct fake f = {0};
  int32_t dev = add_fake(ctx, &f, 1);
  ds_buffer_options o = DS_BUFFER_OPTIONS_INIT;
  o.name = "kv";
  ds_buffer *b = NULL;
  assert_int_equal(ds_buffer_create(&b, ctx, 64, &o), DS_OK);
  void *p = NULL;
  assert_int_equal(ds_buffer_acquire(&p, b, 0, DS_ACCESS_READ), DS_OK);
  assert_int_equal(ds_buffer_acquire(&p, b, dev, DS_ACCESS_READ), DS_OK);
  assert_int_equal(ds_buffer_acquire(&p, b, dev, DS_ACCESS_WRITE), DS_ERR_BUSY);
  assert_error_mentions(ctx, "'kv'", "fake:0");
  assert_int_equal(ds_buffer_destroy(b), DS_ERR_BUSY);
  assert_error_mentions(ctx, "'kv'", "outstanding");
  assert_int_equal(ds_buffer_release(b, 0), DS_OK);
  assert_int_equal(ds_buffer_release(b, dev), DS_OK);
  assert_int_equal(ds_buffer_acquire(&p, b, dev, DS_ACCESS_RW), DS_OK);
  assert_int_equal(ds_buffer_acquire(&p, b, 0, DS_ACCESS_READ), DS_ERR_BUSY);
  assert_int_equal(ds_buffer_acquire(&p, b, dev, DS_ACCESS_READ), DS_ERR_BUSY);
  assert_int_equal(ds_buffer_release(b, 0), DS_ERR_STATE); /* not acquired there */
  assert_error_mentions(ctx, "'kv'", "no acquire outstanding");
  assert_int_equal(ds_buffer_release(b, dev), DS_OK);
  assert_int_equal(ds_buffer_release(b, dev), DS_ERR_STATE);
  assert_int_equal(ds_buffer_destroy(b), DS_OK);
  ds_context_destroy(ctx);
}

static void test_bad_input(void **state) {
  (void)state;
  ds_context *ctx = new_ctx();
  struct fake f = {0};
  int32_t dev = add_fake(ctx, &f, 1);
  ds_buffer *b = NULL;
  void *p = NULL;
  ds_buffer_options o = DS_BUFFER_OPTIONS_INIT;
  o.name = "acts";
  assert_int_equal(ds_buffer_create(&b, ctx, 0, &o), DS_ERR_INVALID_ARG);
  assert_error_mentions(ctx, "'acts'", "size 0");
  assert_null(b);
  assert_int_equal(ds_buffer_create(NULL, ctx, 8, NULL), DS_ERR_INVALID_ARG);
  assert_int_equal(ds_buffer_create(&b, NULL, 8, NULL), DS_ERR_INVALID_ARG);
  assert_int_equal(ds_buffer_register(&b, ctx, NULL, 8, NULL), DS_ERR_INVALID_ARG);
  o.struct_size = 3;
  assert_int_equal(ds_buffer_create(&b, ctx, 8, &o), DS_ERR_ABI);
  o.struct_size = sizeof o;
  o.home_device = dev; /* not a CPU */
  assert_int_equal(ds_buffer_create(&b, ctx, 8, &o), DS_ERR_INVALID_ARG);
  assert_error_mentions(ctx, "'acts'", "not a CPU");
  o.home_device = -1;
  o.device_mask = 1; /* CPU device 0 only */
  assert_int_equal(ds_buffer_create(&b, ctx, 8, &o), DS_OK);
  assert_int_equal(ds_buffer_acquire(&p, b, dev, DS_ACCESS_READ), DS_ERR_UNSUPPORTED);
  assert_error_mentions(ctx, "'acts'", "cannot reach");
  assert_error_mentions(ctx, "fake:0", NULL);
  assert_int_equal(ds_buffer_acquire(&p, b, 99, DS_ACCESS_READ), DS_ERR_NOT_FOUND);
  assert_error_mentions(ctx, "'acts'", "device 99");
  assert_int_equal(ds_buffer_acquire(&p, b, 0, (ds_access)0), DS_ERR_INVALID_ARG);
  assert_int_equal(ds_buffer_acquire(&p, b, 0, (ds_access)7), DS_ERR_INVALID_ARG);
  assert_int_equal(ds_buffer_acquire(NULL, b, 0, DS_ACCESS_READ), DS_ERR_INVALID_ARG);
  assert_int_equal(ds_buffer_acquire(&p, NULL, 0, DS_ACCESS_READ), DS_ERR_INVALID_ARG);
  assert_int_equal(ds_buffer_release(NULL, 0), DS_ERR_INVALID_ARG);
  assert_int_equal(ds_buffer_release(b, 99), DS_ERR_NOT_FOUND);
  assert_int_equal(ds_buffer_destroy(b), DS_OK);
  /* Device allocation failure: clear status, states unchanged, retry works. */
  assert_int_equal(ds_buffer_create(&b, ctx, 8, NULL), DS_OK);
  f.fail_alloc = 1;
  assert_int_equal(ds_buffer_acquire(&p, b, dev, DS_ACCESS_READ), DS_ERR_NO_SPACE);
  assert_error_mentions(ctx, "fake device full", "fake:0");
  f.fail_alloc = 0;
  assert_int_equal(ds_buffer_acquire(&p, b, dev, DS_ACCESS_READ), DS_OK);
  assert_int_equal(ds_buffer_release(b, dev), DS_OK);
  assert_int_equal(ds_buffer_destroy(b), DS_OK);
  ds_context_destroy(ctx);
}

/* Allocator that fails the n-th allocation from now. */
struct faulty {
  int countdown;
  int failed;
};

static void *faulty_alloc(void *user, size_t size) {
  struct faulty *f = user;
  if (f->countdown > 0 && --f->countdown == 0) {
    f->failed = 1;
    return NULL;
  }
  return malloc(size);
}

static void faulty_free(void *user, void *p) {
  (void)user;
  free(p);
}

static void test_alloc_faults_on_create(void **state) {
  (void)state;
  struct faulty f = {0, 0};
  ds_allocator a = {faulty_alloc, faulty_free, &f};
  ds_context *ctx = new_ctx_alloc(&a);
  int32_t n = 0;
  assert_int_equal(ds_fabric_device_count(&n, ctx), DS_OK);
  /* Fail each allocation of buffer creation in turn until one succeeds. */
  int succeeded = 0;
  for (int k = 1; k < 10 && !succeeded; k++) {
    f.countdown = k;
    f.failed = 0;
    ds_buffer *b = NULL;
    ds_status st = ds_buffer_create(&b, ctx, 4096, NULL);
    if (f.failed) {
      assert_int_equal(st, DS_ERR_NO_MEMORY);
      assert_null(b);
    } else {
      assert_int_equal(st, DS_OK);
      assert_int_equal(ds_buffer_destroy(b), DS_OK);
      succeeded = 1;
    }
  }
  assert_true(succeeded);
  f.countdown = 0;
  ds_context_destroy(ctx);
}

/* Each allocation of the fabric's creation failing in turn: a clean DS_ERR_NO_MEMORY (or a
 * fabric without the backend whose setup failed), never a crash or a leak (ASan). */
static void test_alloc_faults_on_fabric_creation(void **state) {
  (void)state;
  int ok = 0;
  for (int k = 1; k < 40 && !ok; k++) {
    struct faulty f = {0, 0};
    ds_allocator a = {faulty_alloc, faulty_free, &f};
    ds_context *ctx = new_ctx_alloc(&a);
    f.countdown = k;
    int32_t n = 0;
    ds_status st = ds_fabric_device_count(&n, ctx);
    if (st == DS_OK) {
      assert_true(n >= 1);
      ok = !f.failed;
    } else {
      assert_int_equal(st, DS_ERR_NO_MEMORY);
      f.countdown = 0;
      assert_int_equal(ds_fabric_device_count(&n, ctx), DS_OK); /* a later call retries */
      assert_true(n >= 1);
    }
    f.countdown = 0;
    ds_context_destroy(ctx);
  }
  assert_true(ok);
}

/* Readers on several threads at once. */
struct reader_arg {
  ds_buffer *b;
  int ok;
};

static void *reader(void *arg) {
  struct reader_arg *r = arg;
  r->ok = 1;
  for (int i = 0; i < 2000; i++) {
    unsigned char *p = NULL;
    if (ds_buffer_acquire((void **)&p, r->b, 0, DS_ACCESS_READ) != DS_OK || p[3] != 5) r->ok = 0;
    if (ds_buffer_release(r->b, 0) != DS_OK) r->ok = 0;
  }
  return NULL;
}

static void test_concurrent_readers(void **state) {
  (void)state;
  ds_context *ctx = new_ctx();
  ds_buffer *b = NULL;
  assert_int_equal(ds_buffer_create(&b, ctx, 16, NULL), DS_OK);
  unsigned char *p = NULL;
  assert_int_equal(ds_buffer_acquire((void **)&p, b, 0, DS_ACCESS_WRITE), DS_OK);
  memset(p, 5, 16);
  assert_int_equal(ds_buffer_release(b, 0), DS_OK);
  pthread_t t[4];
  struct reader_arg args[4];
  for (int i = 0; i < 4; i++) {
    args[i].b = b;
    assert_int_equal(pthread_create(&t[i], NULL, reader, &args[i]), 0);
  }
  for (int i = 0; i < 4; i++) {
    pthread_join(t[i], NULL);
    assert_true(args[i].ok);
  }
  assert_int_equal(ds_buffer_destroy(b), DS_OK);
  ds_context_destroy(ctx);
}

static void test_transfer_cost(void **state) {
  (void)state;
  ds_context *ctx = new_ctx();
  struct fake f = {0};
  int32_t dev = add_fake(ctx, &f, 1);
  ds_device_info info = DS_DEVICE_INFO_INIT;
  assert_int_equal(ds_fabric_device_info(&info, ctx, dev), DS_OK);
  assert_true(ds__fabric_transfer_cost(ctx, 0, 0, 1 << 20) == 0);
  double small = ds__fabric_transfer_cost(ctx, 0, info.memory_space, 1 << 10);
  double big = ds__fabric_transfer_cost(ctx, 0, info.memory_space, 1 << 24);
  assert_true(small > 0 && big > small);
  assert_int_equal(ds__fabric_space_device(ctx, info.memory_space), dev);
  /* A device that maps host memory costs nothing from host memory. */
  struct fake g = {0};
  g.alias = 1;
  int32_t mapped = add_fake(ctx, &g, 1);
  assert_int_equal(ds_fabric_device_info(&info, ctx, mapped), DS_OK);
  assert_true(ds__fabric_transfer_cost(ctx, 0, info.memory_space, 1 << 24) == 0);
  ds_context_destroy(ctx);
}

static void cpu_fill(void *user, void *const *args, const size_t *arg_sizes, size_t nargs,
                     const size_t *global, uint32_t dims) {
  (void)arg_sizes, (void)dims;
  assert_int_equal(nargs, 2);
  unsigned char *p = *(unsigned char *const *)args[0];
  unsigned char v = *(const unsigned char *)args[1];
  for (size_t i = 0; i < global[0]; i++) p[i] = v;
  (*(int *)user)++;
}

static void test_cpu_launch_and_events(void **state) {
  (void)state;
  ds_context *ctx = new_ctx();
  int calls = 0;
  struct ds__cpu_kernel k = {cpu_fill, &calls};
  ds_buffer *b = NULL;
  assert_int_equal(ds_buffer_create(&b, ctx, 32, NULL), DS_OK);
  unsigned char *p = NULL, v = 9;
  assert_int_equal(ds_buffer_acquire((void **)&p, b, 0, DS_ACCESS_WRITE), DS_OK);
  void *args[2] = {&p, &v};
  size_t sizes[2] = {sizeof p, 1}, global = 32;
  void *ev = (void *)1;
  assert_int_equal(ds__fabric_launch(ctx, 0, &k, args, sizes, 2, &global, 1, &ev), DS_OK);
  assert_null(ev); /* CPU launches are synchronous */
  assert_int_equal(calls, 1);
  assert_int_equal(p[31], 9);
  assert_int_equal(ds_buffer_release(b, 0), DS_OK);
  assert_int_equal(ds__fabric_launch(ctx, 0, &k, args, sizes, 2, &global, 0, NULL),
                   DS_ERR_INVALID_ARG);
  assert_int_equal(ds__fabric_launch(ctx, 77, &k, args, sizes, 2, &global, 1, NULL),
                   DS_ERR_NOT_FOUND);
  struct fake f = {0};
  int32_t dev = add_fake(ctx, &f, 1); /* no launch hook */
  assert_int_equal(ds__fabric_launch(ctx, dev, &k, args, sizes, 2, &global, 1, NULL),
                   DS_ERR_UNSUPPORTED);
  assert_int_equal(ds__fabric_event_record(ctx, 0, &ev), DS_OK);
  assert_null(ev);
  assert_int_equal(ds__fabric_event_wait(ctx, 0, ev), DS_OK);
  assert_int_equal(ds_buffer_destroy(b), DS_OK);
  ds_context_destroy(ctx);
}

static int ext_destroyed;
static ds_status ext_create(ds_context *ctx, void **out) {
  *out = ds__alloc(ctx, 16);
  return *out ? DS_OK : DS_ERR_NO_MEMORY;
}
static void ext_destroy(ds_context *ctx, void *state) {
  ext_destroyed++;
  ds__free(ctx, state);
}

static void test_extension_slots(void **state) {
  (void)state;
  ds_context *ctx = new_ctx();
  void *a = ds__fabric_ext(ctx, DS__FABRIC_EXT_GRAPH, ext_create, ext_destroy);
  void *b = ds__fabric_ext(ctx, DS__FABRIC_EXT_GRAPH, ext_create, ext_destroy);
  assert_non_null(a);
  assert_ptr_equal(a, b);
  assert_null(ds__fabric_ext(ctx, DS__FABRIC_EXT_MAX, ext_create, ext_destroy));
  ext_destroyed = 0;
  ds_context_destroy(ctx); /* destroys the slot's state; ASan checks nothing leaks */
  assert_int_equal(ext_destroyed, 1);
}

/* ---- direct device-to-device copies ---- */

/* A two-device fake backend with copy_peer; @p old_table registers it with the struct_size of
 * a table built before copy_peer existed (accepted, no direct copies). */
static int32_t add_twin(ds_context *ctx, struct fake *f, int old_table) {
  ds_fabric_backend b = fake_table("twin", 2, 1);
  if (old_table) b.struct_size = (uint32_t)offsetof(ds_fabric_backend, copy_peer);
  int32_t first = -1;
  assert_int_equal(ds_fabric_backend_register(&first, ctx, &b, f), DS_OK);
  return first;
}

/* Writes 0..n-1 on device @p a, then reads it on device @p b; returns 1 if b saw those bytes. */
static int hand_over(ds_buffer *buf, int32_t a, int32_t b) {
  uint8_t *p = NULL;
  assert_int_equal(ds_buffer_acquire((void **)&p, buf, a, DS_ACCESS_WRITE), DS_OK);
  for (size_t i = 0; i < ds_buffer_size(buf); i++) p[i] = (uint8_t)(i * 7 + 3);
  assert_int_equal(ds_buffer_release(buf, a), DS_OK);
  assert_int_equal(ds_buffer_acquire((void **)&p, buf, b, DS_ACCESS_READ), DS_OK);
  int same = 1;
  for (size_t i = 0; i < ds_buffer_size(buf); i++) same &= p[i] == (uint8_t)(i * 7 + 3);
  assert_int_equal(ds_buffer_release(buf, b), DS_OK);
  return same;
}

static void test_peer_copy_direct(void **state) {
  (void)state;
  ds_context *ctx = new_ctx();
  struct fake f = {0};
  int32_t d0 = add_twin(ctx, &f, 0), d1 = d0 + 1;
  ds_buffer *buf = NULL;
  assert_int_equal(ds_buffer_create(&buf, ctx, 4096, NULL), DS_OK);
  assert_true(hand_over(buf, d0, d1));
  assert_int_equal(f.peers, 1);
  assert_int_equal(f.copies_out, 0); /* never staged through the host */
  assert_true(ds_test_stat(ctx, "fabric.peer_copies") == 1);
  char name[64];
  snprintf(name, sizeof name, "fabric.dev%d.bytes_moved", (int)d1);
  assert_true(ds_test_stat(ctx, name) == 4096);
  ds_replica_state rs;
  assert_int_equal(ds_buffer_state(&rs, buf, 0), DS_OK);
  assert_int_equal(rs, DS_REPLICA_INVALID); /* the host copy was not made */
  assert_int_equal(ds_buffer_state(&rs, buf, d0), DS_OK);
  assert_int_equal(rs, DS_REPLICA_SHARED);
  /* The host then reads from a device replica, and the reverse direction is direct too. */
  assert_true(hand_over(buf, d1, 0));
  assert_int_equal(f.copies_out, 1);
  assert_true(hand_over(buf, d1, d0));
  assert_int_equal(f.peers, 2);
  /* The partitioner prices the direct copy as one hop, not two. */
  int32_t s0 = ctx->fabric->dev[d0].info.memory_space, s1 = ctx->fabric->dev[d1].info.memory_space;
  double direct = ds__fabric_transfer_cost(ctx, s0, s1, 1 << 20);
  assert_int_equal(ds_context_set_param(ctx, DS_PARAM_FABRIC_PEER_COPY, 0), DS_OK);
  double staged = ds__fabric_transfer_cost(ctx, s0, s1, 1 << 20);
  assert_true(direct > 0 && staged > 1.5 * direct);
  assert_int_equal(ds_buffer_destroy(buf), DS_OK);
  ds_context_destroy(ctx);
}

/* Without a direct path the bytes go through the host replica: the tunable off, a backend
 * that refuses the pair, a table from before copy_peer. */
static void test_peer_copy_staged(void **state) {
  (void)state;
  for (int way = 0; way < 3; way++) {
    ds_context *ctx = new_ctx();
    struct fake f = {0};
    f.refuse_peer = way == 1;
    int32_t d0 = add_twin(ctx, &f, way == 2), d1 = d0 + 1;
    if (way == 0) assert_int_equal(ds_context_set_param(ctx, DS_PARAM_FABRIC_PEER_COPY, 0), DS_OK);
    ds_buffer *buf = NULL;
    assert_int_equal(ds_buffer_create(&buf, ctx, 3000, NULL), DS_OK);
    assert_true(hand_over(buf, d0, d1));
    assert_int_equal(f.peers, 0);
    assert_int_equal(f.copies_out, 1); /* d0 -> host */
    assert_int_equal(f.copies_in, 1);  /* host -> d1 */
    assert_true(ds_test_stat(ctx, "fabric.peer_copies") == 0);
    ds_replica_state rs;
    assert_int_equal(ds_buffer_state(&rs, buf, 0), DS_OK);
    assert_int_equal(rs, DS_REPLICA_SHARED);
    assert_int_equal(ds_buffer_destroy(buf), DS_OK);
    ds_context_destroy(ctx);
  }
}

/* ---- asynchronous direct copies ---- */

/* The fake's device queue for copy_peer_async: one copy may be queued (not yet made); waiting
 * on any event of the fake (the copy's own or a marker recorded after it) makes it. */
struct fake_queue {
  struct fake f;
  void *dst;
  const void *src;
  size_t n;
  int queued, async_calls, sync_calls, waits, releases;
};

static void fake_run_queue(struct fake_queue *q) {
  if (!q->queued) return;
  memcpy(q->dst, q->src, q->n);
  q->queued = 0;
  q->f.peers++;
}

static ds_status fake_peer_async(void *user, int32_t dst_dev, void *dst, int32_t src_dev,
                                 void *src, size_t n, void **event, char *msg, size_t msg_size) {
  struct fake_queue *q = user;
  (void)dst_dev, (void)src_dev, (void)msg, (void)msg_size;
  fake_run_queue(q); /* in order: an earlier copy first */
  q->dst = dst, q->src = src, q->n = n, q->queued = 1;
  if (!event) {
    q->sync_calls++;
    fake_run_queue(q);
    return DS_OK;
  }
  q->async_calls++;
  *event = q; /* any non-NULL handle */
  return DS_OK;
}

static ds_status fake_record(void *user, int32_t dev, void **event, char *msg, size_t msg_size) {
  (void)dev, (void)msg, (void)msg_size;
  *event = user;
  return DS_OK;
}

static ds_status fake_wait(void *user, void *event, char *msg, size_t msg_size) {
  struct fake_queue *q = user;
  (void)event, (void)msg, (void)msg_size;
  q->waits++;
  fake_run_queue(q);
  return DS_OK;
}

static void fake_release(void *user, void *event) {
  struct fake_queue *q = user;
  (void)event;
  q->releases++;
}

/* The twin with copy_peer_async (and events); @p size: the table's struct_size. */
static int32_t add_async_twin(ds_context *ctx, struct fake_queue *q, uint32_t size) {
  ds_fabric_backend b = fake_table("twin", 2, 1);
  b.copy_peer_async = fake_peer_async;
  b.event_record = fake_record;
  b.event_wait = fake_wait;
  b.event_release = fake_release;
  b.struct_size = size;
  int32_t first = -1;
  assert_int_equal(ds_fabric_backend_register(&first, ctx, &b, q), DS_OK);
  return first;
}

/* A prefetch (as the graph executor makes for a node's inputs) of a replica another device of
 * the backend holds queues the copy and returns: nothing was waited for; the consumer's
 * acquire waits, then sees the bytes. Stats count the copy once, when it is made. */
static void test_peer_copy_async_prefetch(void **state) {
  (void)state;
  ds_context *ctx = new_ctx();
  struct fake_queue q;
  memset(&q, 0, sizeof q);
  int32_t d0 = add_async_twin(ctx, &q, sizeof(ds_fabric_backend)), d1 = d0 + 1;
  ds_buffer *buf = NULL;
  assert_int_equal(ds_buffer_create(&buf, ctx, 4096, NULL), DS_OK);
  uint8_t *p = NULL;
  assert_int_equal(ds_buffer_acquire((void **)&p, buf, d0, DS_ACCESS_WRITE), DS_OK);
  memset(p, 0x5A, 4096);
  assert_int_equal(ds_buffer_release(buf, d0), DS_OK);
  void *ev = NULL;
  assert_int_equal(ds__buffer_prefetch(buf, d1, &ev), DS_OK);
  assert_ptr_equal(ev, &q);
  assert_int_equal(q.async_calls, 1);
  assert_int_equal(q.queued, 1); /* not made yet, and nobody waited */
  assert_int_equal(q.waits, 0);
  assert_true(ds_test_stat(ctx, "fabric.peer_copies") == 1);
  ds__fabric_event_release(ctx, d1, ev);
  assert_int_equal(q.releases, 1);
  /* The consumer. */
  assert_int_equal(ds_buffer_acquire((void **)&p, buf, d1, DS_ACCESS_READ), DS_OK);
  assert_int_equal(q.waits, 1);
  assert_int_equal(q.queued, 0);
  size_t bad = 0;
  for (size_t i = 0; i < 4096; i++) bad += p[i] != 0x5A;
  assert_int_equal(bad, 0);
  assert_int_equal(ds_buffer_release(buf, d1), DS_OK);
  assert_int_equal(q.f.copies_out + q.f.copies_in, 0); /* never through the host */
  assert_true(ds_test_stat(ctx, "fabric.peer_copies") == 1);
  char name[64];
  snprintf(name, sizeof name, "fabric.dev%d.bytes_moved", (int)d1);
  assert_true(ds_test_stat(ctx, name) == 4096);
  /* A plain acquire (no event asked) gets a finished copy: the other direction. */
  assert_true(hand_over(buf, d1, d0));
  assert_int_equal(q.sync_calls, 1);
  assert_int_equal(q.f.peers, 2);
  /* A writer on the source device waits for a copy still reading it. */
  assert_int_equal(ds_buffer_acquire((void **)&p, buf, d0, DS_ACCESS_WRITE), DS_OK);
  memset(p, 0x11, 4096);
  assert_int_equal(ds_buffer_release(buf, d0), DS_OK);
  assert_int_equal(ds__buffer_prefetch(buf, d1, &ev), DS_OK);
  ds__fabric_event_release(ctx, d1, ev);
  assert_int_equal(ds_buffer_acquire((void **)&p, buf, d0, DS_ACCESS_RW), DS_OK);
  assert_int_equal(q.queued, 0);
  assert_int_equal(ds_buffer_release(buf, d0), DS_OK);
  assert_int_equal(ds_buffer_destroy(buf), DS_OK);
  ds_context_destroy(ctx);
}

/* A table whose struct_size ends before copy_peer_async copies through copy_peer (waited),
 * even if the caller's struct had the new entry filled in. */
static void test_peer_copy_async_old_table(void **state) {
  (void)state;
  ds_context *ctx = new_ctx();
  struct fake_queue q;
  memset(&q, 0, sizeof q);
  int32_t d0 = add_async_twin(ctx, &q, (uint32_t)offsetof(ds_fabric_backend, copy_peer_async));
  ds_buffer *buf = NULL;
  assert_int_equal(ds_buffer_create(&buf, ctx, 1000, NULL), DS_OK);
  uint8_t *p = NULL;
  assert_int_equal(ds_buffer_acquire((void **)&p, buf, d0, DS_ACCESS_WRITE), DS_OK);
  assert_int_equal(ds_buffer_release(buf, d0), DS_OK);
  void *ev = NULL;
  assert_int_equal(ds__buffer_prefetch(buf, d0 + 1, &ev), DS_OK);
  assert_null(ev); /* copy_peer: done on return */
  assert_int_equal(q.async_calls + q.sync_calls, 0);
  assert_int_equal(q.f.peers, 1);
  assert_true(hand_over(buf, d0 + 1, d0));
  assert_int_equal(ds_buffer_destroy(buf), DS_OK);
  ds_context_destroy(ctx);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_devices_cpu_first),
      cmocka_unit_test(test_backend_register_checks),
      cmocka_unit_test(test_buffer_cpu_roundtrip),
      cmocka_unit_test(test_msi_with_device_memory),
      cmocka_unit_test(test_zero_copy_alias),
      cmocka_unit_test(test_other_cpu_space_reads_in_place),
      cmocka_unit_test(test_writer_is_exclusive),
      cmocka_unit_test(test_bad_input),
      cmocka_unit_test(test_alloc_faults_on_create),
      cmocka_unit_test(test_alloc_faults_on_fabric_creation),
      cmocka_unit_test(test_concurrent_readers),
      cmocka_unit_test(test_transfer_cost),
      cmocka_unit_test(test_cpu_launch_and_events),
      cmocka_unit_test(test_extension_slots),
      cmocka_unit_test(test_peer_copy_direct),
      cmocka_unit_test(test_peer_copy_staged),
      cmocka_unit_test(test_peer_copy_async_prefetch),
      cmocka_unit_test(test_peer_copy_async_old_table),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
