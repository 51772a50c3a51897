/* oneDNN (C API) matmul for 16-bit operands, with primitives cached per context by shape,
 * strides, dtypes, alpha and beta. A case oneDNN only covers with its reference (slow,
 * unvectorised) implementation, or not at all, is cached as unsupported so the caller's
 * fp32 fallback is chosen without asking oneDNN again. The cache is guarded by the module
 * mutex; entries in use are reference-counted so eviction never frees a running primitive. */
#include <dnnl.h>

#include "precision_internal.h"

#define DS__GEMM_CACHE_SLOTS 32

int ds__gemm_dnnl_test_mode = 0;

typedef struct gemm_key {
  int64_t m, n, k, lda, ldb, ldc;
  int32_t ta, tc, trans_a, trans_b;
  uint32_t alpha_bits, beta_bits;
} gemm_key;

typedef struct gemm_entry {
  gemm_key key;
  int used, refs, evicted;
  uint64_t last_use;
  dnnl_primitive_t prim; /* NULL: unsupported on this CPU */
  struct gemm_entry *next_evicted;
} gemm_entry;

struct ds__gemm_cache {
  dnnl_engine_t engine;
  uint64_t tick;
  gemm_entry *slots[DS__GEMM_CACHE_SLOTS];
  gemm_entry *evicted; /* evicted while in use; freed when their last user finishes */
};

static dnnl_data_type_t dnnl_dt(ds_dtype t) {
  return t == DS_DTYPE_F16 ? dnnl_f16 : t == DS_DTYPE_BF16 ? dnnl_bf16 : dnnl_f32;
}

static gemm_key key_of(const ds__gemm_2d *g) {
  gemm_key k;
  memset(&k, 0, sizeof k);
  k.m = g->m, k.n = g->n, k.k = g->k, k.lda = g->lda, k.ldb = g->ldb, k.ldc = g->ldc;
  k.ta = (int32_t)g->ta, k.tc = (int32_t)g->tc, k.trans_a = g->trans_a, k.trans_b = g->trans_b;
  k.alpha_bits = ds__f32_bits(g->alpha), k.beta_bits = ds__f32_bits(g->beta);
  return k;
}

static void md_2d(dnnl_memory_desc_t *md, int64_t rows, int64_t cols, int64_t ld, int trans,
                  ds_dtype t) {
  dnnl_dims_t dims = {rows, cols}, strides = {ld, 1};
  if (trans) strides[0] = 1, strides[1] = ld; /* stored [cols, rows] */
  dnnl_memory_desc_init_by_strides(md, 2, dims, dnnl_dt(t), strides);
}

/* A primitive for g, or NULL when oneDNN has no native kernel for it. */
static dnnl_primitive_t create_prim(dnnl_engine_t eng, const ds__gemm_2d *g) {
  dnnl_memory_desc_t a_md, b_md, c_md;
  md_2d(&a_md, g->m, g->k, g->lda, g->trans_a, g->ta);
  md_2d(&b_md, g->k, g->n, g->ldb, g->trans_b, g->tb);
  md_2d(&c_md, g->m, g->n, g->ldc, 0, g->tc);
  dnnl_matmul_desc_t desc;
  if (dnnl_matmul_desc_init(&desc, &a_md, &b_md, NULL, &c_md) != dnnl_success) return NULL;
  dnnl_primitive_attr_t attr = NULL;
  dnnl_post_ops_t po = NULL;
  dnnl_primitive_desc_t pd = NULL;
  dnnl_primitive_t prim = NULL;
  if (dnnl_primitive_attr_create(&attr) != dnnl_success) return NULL;
  if (g->alpha != 1.0f) dnnl_primitive_attr_set_output_scales(attr, 1, 0, &g->alpha);
  if (g->beta != 0.0f && dnnl_post_ops_create(&po) == dnnl_success) {
    dnnl_post_ops_append_sum(po, g->beta);
    dnnl_primitive_attr_set_post_ops(attr, po);
  }
  if (dnnl_primitive_desc_create(&pd, &desc, attr, eng, NULL) == dnnl_success) {
    const char *impl = NULL;
    dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl);
    if (impl && (ds__gemm_dnnl_test_mode || strncmp(impl, "ref", 3) != 0))
      dnnl_primitive_create(&prim, pd);
    dnnl_primitive_desc_destroy(pd);
  }
  if (po) dnnl_post_ops_destroy(po);
  dnnl_primitive_attr_destroy(attr);
  return prim;
}

static void entry_free(ds_context *ctx, gemm_entry *e) {
  if (e->prim) dnnl_primitive_destroy(e->prim);
  ds__free(ctx, e);
}

/* Under p->mu: the entry for g (created if missing), its refs raised; NULL on no memory. */
static gemm_entry *acquire(ds_context *ctx, struct ds__gemm_cache *c, const ds__gemm_2d *g) {
  gemm_key key = key_of(g);
  int victim = -1;
  for (int i = 0; i < DS__GEMM_CACHE_SLOTS; i++) {
    gemm_entry *e = c->slots[i];
    if (e && memcmp(&e->key, &key, sizeof key) == 0) {
      e->refs++;
      e->last_use = ++c->tick;
      return e;
    }
    if (victim >= 0 && !c->slots[victim]) continue; /* an empty slot is already chosen */
    if (!e || victim < 0 || e->last_use < c->slots[victim]->last_use) victim = i;
  }
  gemm_entry *e = ds__calloc(ctx, 1, sizeof *e);
  if (!e) return NULL;
  e->key = key;
  e->prim = create_prim(c->engine, g);
  e->refs = 1;
  e->last_use = ++c->tick;
  gemm_entry *old = c->slots[victim];
  if (old && old->refs) {
    old->evicted = 1;
    old->next_evicted = c->evicted;
    c->evicted = old;
  } else if (old) {
    entry_free(ctx, old);
  }
  c->slots[victim] = e;
  return e;
}

static void release(ds_context *ctx, struct ds__gemm_cache *c, gemm_entry *e) {
  if (--e->refs || !e->evicted) return;
  for (gemm_entry **pp = &c->evicted; *pp; pp = &(*pp)->next_evicted)
    if (*pp == e) {
      *pp = e->next_evicted;
      break;
    }
  entry_free(ctx, e);
}

static ds_status execute(dnnl_engine_t eng, dnnl_primitive_t prim, const ds__gemm_2d *g) {
  dnnl_memory_desc_t a_md, b_md, c_md;
  md_2d(&a_md, g->m, g->k, g->lda, g->trans_a, g->ta);
  md_2d(&b_md, g->k, g->n, g->ldb, g->trans_b, g->tb);
  md_2d(&c_md, g->m, g->n, g->ldc, 0, g->tc);
  dnnl_memory_t ma = NULL, mb = NULL, mc = NULL;
  dnnl_stream_t s = NULL;
  dnnl_status_t r = dnnl_memory_create(&ma, &a_md, eng, (void *)g->a);
  if (r == dnnl_success) r = dnnl_memory_create(&mb, &b_md, eng, (void *)g->b);
  if (r == dnnl_success) r = dnnl_memory_create(&mc, &c_md, eng, g->c);
  if (r == dnnl_success) r = dnnl_stream_create(&s, eng, dnnl_stream_default_flags);
  if (r == dnnl_success) {
    dnnl_exec_arg_t args[3] = {{DNNL_ARG_SRC, ma}, {DNNL_ARG_WEIGHTS, mb}, {DNNL_ARG_DST, mc}};
    r = dnnl_primitive_execute(prim, s, 3, args);
    if (r == dnnl_success) r = dnnl_stream_wait(s);
  }
  if (s) dnnl_stream_destroy(s);
  if (ma) dnnl_memory_destroy(ma);
  if (mb) dnnl_memory_destroy(mb);
  if (mc) dnnl_memory_destroy(mc);
  return r == dnnl_success ? DS_OK : DS_ERR_INTERNAL;
}

static struct ds__gemm_cache *cache_get(ds_context *ctx, struct ds__precision *p) {
  if (!p->gemm_cache) {
    struct ds__gemm_cache *c = ds__calloc(ctx, 1, sizeof *c);
    if (!c) return NULL;
    if (dnnl_engine_create(&c->engine, dnnl_cpu, 0) != dnnl_success) {
      ds__free(ctx, c);
      return NULL;
    }
    p->gemm_cache = c;
  }
  return p->gemm_cache;
}

ds_status ds__gemm_dnnl(ds_context *ctx, const ds__gemm_2d *g) {
  if (g->tc != DS_DTYPE_F32 && g->tc != g->ta) return DS_ERR_UNSUPPORTED;
  struct ds__precision *p = ds__precision_get(ctx);
  if (!p) return ds__error(ctx, DS_ERR_NO_MEMORY, "precision", "gemm: no memory for state");
  pthread_mutex_lock(&p->mu);
  struct ds__gemm_cache *c = cache_get(ctx, p);
  gemm_entry *e = c ? acquire(ctx, c, g) : NULL;
  pthread_mutex_unlock(&p->mu);
  if (!e) return DS_ERR_UNSUPPORTED; /* no memory or no engine: the fp32 path still works */
  ds_status st = e->prim ? execute(c->engine, e->prim, g) : DS_ERR_UNSUPPORTED;
  pthread_mutex_lock(&p->mu);
  release(ctx, c, e);
  pthread_mutex_unlock(&p->mu);
  if (st == DS_ERR_INTERNAL)
    return ds__error(ctx, st, "precision", "gemm: oneDNN matmul %lldx%lldx%lld failed",
                     (long long)g->m, (long long)g->n, (long long)g->k);
  return st;
}

void ds__gemm_cache_destroy(ds_context *ctx, struct ds__gemm_cache *c) {
  if (!c) return;
  for (int i = 0; i < DS__GEMM_CACHE_SLOTS; i++)
    if (c->slots[i]) entry_free(ctx, c->slots[i]);
  while (c->evicted) {
    gemm_entry *e = c->evicted;
    c->evicted = e->next_evicted;
    entry_free(ctx, e);
  }
  dnnl_engine_destroy(c->engine);
  ds__free(ctx, c);
}
