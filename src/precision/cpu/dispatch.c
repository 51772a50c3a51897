/* CPU feature detection and the choice of kernel table: the best level the CPU supports,
 * lowered by DS_PARAM_PRECISION_ISA when set. Detection runs once per process. */
#include "precision_internal.h"

#if defined(__x86_64__)
#include <cpuid.h>

/* F16C straight from CPUID: clang 14's __builtin_cpu_supports does not know "f16c". */
static int ds__has_f16c(void) {
  unsigned a, b, c, d;
  return __get_cpuid(1, &a, &b, &c, &d) && (c & (1u << 29));
}
#endif

static pthread_once_t ds__isa_once = PTHREAD_ONCE_INIT;
static ds_precision_isa ds__isa_best = DS_PRECISION_ISA_SCALAR;

static void ds__isa_detect(void) {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  __builtin_cpu_init();
  int avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
             ds__has_f16c();
  /* __builtin_cpu_supports also checks that the OS saves the wider registers (XCR0). */
  if (avx2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw"))
    ds__isa_best = DS_PRECISION_ISA_AVX512;
  else if (avx2)
    ds__isa_best = DS_PRECISION_ISA_AVX2;
#endif
}

ds_precision_isa ds__prec_cpu_isa(void) {
  pthread_once(&ds__isa_once, ds__isa_detect);
  return ds__isa_best;
}

const ds__prec_kernels *ds__prec_kernels_for(ds_precision_isa isa) {
  ds_precision_isa best = ds__prec_cpu_isa();
  if (isa == DS_PRECISION_ISA_AUTO || isa > best) isa = best;
  switch (isa) {
  case DS_PRECISION_ISA_AVX512: return &ds__prec_kernels_avx512;
  case DS_PRECISION_ISA_AVX2: return &ds__prec_kernels_avx2;
  default: return &ds__prec_kernels_scalar;
  }
}

const ds__prec_kernels *ds__prec_kernels_ctx(ds_context *ctx) {
  return ds__prec_kernels_for((ds_precision_isa)ds__param(ctx, DS_PARAM_PRECISION_ISA));
}
