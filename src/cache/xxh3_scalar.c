/* The portable (scalar) build of XXH3 and of the fused copy-and-hash: never chosen at run time
 * on x86-64 (the baseline SSE2 build is faster); built so the tests check the scalar form that
 * targets without SSE2 or AVX2 use against libxxhash. */
#define XXH_INLINE_ALL
#define XXH_VECTOR XXH_SCALAR
#define DS__XXH3_FUSED_SCALAR 1
#include <xxhash.h>

#include "xxh3_body.h"

const ds__xxh3_impl ds__xxh3_scalar = {"scalar", ds__xh_hash, ds__xh_hash_parts,
                                       ds__xh_copy_hash};
