/* The AVX2 build of XXH3 for the disk tier's checksums. This file alone is compiled with
 * -mavx2 (src/cache/module.cmake): libxxhash and the rest of the library are built for
 * baseline x86-64, where XXH3 runs its SSE2 loop at about half the speed. Its functions are
 * only called after ds__xxh3_avx2_usable() says the CPU has AVX2. */
#if defined(__x86_64__) && defined(__AVX2__)
#define XXH_INLINE_ALL
#define XXH_VECTOR XXH_AVX2
#include <xxhash.h>

#include "xxh3_body.h"

const ds__xxh3_impl ds__xxh3_avx2 = {"avx2", ds__xh_hash, ds__xh_hash_parts, ds__xh_copy_hash};
#else
#include "xxh3.h"

const ds__xxh3_impl ds__xxh3_avx2 = {NULL, NULL, NULL, NULL}; /* never selected */
#endif
