/* The baseline (SSE2 on x86-64) build of XXH3 for the disk tier's checksums, and the choice
 * of table: detection runs once per process. */
#include <pthread.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "xxh3_body.h"

const ds__xxh3_impl ds__xxh3_baseline = {"baseline", ds__xh_hash, ds__xh_hash_parts,
                                         ds__xh_copy_hash};

static pthread_once_t ds__xxh3_once = PTHREAD_ONCE_INIT;
static int ds__xxh3_has_avx2;

static void ds__xxh3_detect(void) {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  __builtin_cpu_init();
  /* __builtin_cpu_supports also checks that the OS saves the YMM registers (XCR0) */
  ds__xxh3_has_avx2 = ds__xxh3_avx2.name != NULL && __builtin_cpu_supports("avx2");
#endif
}

int ds__xxh3_avx2_usable(void) {
  pthread_once(&ds__xxh3_once, ds__xxh3_detect);
  return ds__xxh3_has_avx2;
}

const ds__xxh3_impl *ds__xxh3_select(int force_baseline) {
  return !force_baseline && ds__xxh3_avx2_usable() ? &ds__xxh3_avx2 : &ds__xxh3_baseline;
}
