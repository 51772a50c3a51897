/* Durable writes with the persistent cache, the way tests/test_crash_consistency.c checks them:
 * batched durability, and a record counts as committed only once a ds_cache_flush() after it
 * returned DS_OK. A crash (kill -9, or a machine crash) can lose records written after the last
 * successful flush, never a committed one, and never returns a torn value. I/O errors and a full
 * disk are ordinary statuses: report them and go on (the cache stays usable).
 *
 *   reliability_durable_log [DIR]     (default: ./durable_log.cache) */
#include <stdio.h>
#include <string.h>

#include "deepseek.h"

int main(int argc, char **argv) {
  const char *dir = argc > 1 ? argv[1] : "durable_log.cache";
  ds_context *ctx = NULL;
  if (ds_context_create(&ctx, NULL) != DS_OK) {
    fprintf(stderr, "context: %s\n", ds_context_last_error(NULL));
    return 1;
  }
  ds_cache_persist_options o = DS_CACHE_PERSIST_OPTIONS_INIT;
  o.max_bytes = 64u << 20;               /* oldest segments are dropped beyond this */
  o.durability = DS_CACHE_SYNC_BATCHED;  /* cheap puts; durability at each flush */
  o.sync_interval_ms = 1000;             /* the background sync bounds what a crash loses */
  ds_cache *log = NULL;
  ds_status st = ds_cache_open_persistent_ex(&log, ctx, dir, &o); /* rebuilds the index */
  if (st != DS_OK) {
    fprintf(stderr, "open %s: %s: %s\n", dir, ds_status_name(st), ds_context_last_error(ctx));
    ds_context_destroy(ctx);
    return 1;
  }
  unsigned committed = 0;
  for (unsigned batch = 0; batch < 10; batch++) {
    for (unsigned i = 0; i < 100; i++) {
      char key[32], val[64];
      int kl = snprintf(key, sizeof key, "record-%u", batch * 100 + i);
      int vl = snprintf(val, sizeof val, "payload of record %u", batch * 100 + i);
      st = ds_cache_put(log, key, (size_t)kl, val, (size_t)vl);
      if (st != DS_OK) break; /* DS_ERR_IO, DS_ERR_NO_SPACE: this put is not stored */
    }
    /* the commit point: only now are this batch's records safe from a crash */
    if (st == DS_OK) st = ds_cache_flush(log);
    if (st != DS_OK) {
      fprintf(stderr, "batch %u not committed: %s: %s\n", batch, ds_status_name(st),
              ds_context_last_error(ctx));
      continue; /* retry later, or give up; earlier batches stay committed */
    }
    committed = (batch + 1) * 100;
  }
  char out[64];
  size_t len = 0;
  st = ds_cache_get(log, "record-42", 9, out, sizeof out, &len);
  printf("%u records committed in %s; record-42: %s %.*s\n", committed, dir,
         ds_status_name(st), st == DS_OK ? (int)len : 0, out);
  ds_cache_destroy(log);
  ds_context_destroy(ctx);
  return 0;
}
