/* The one place the library touches C11 atomics: everything under src/ goes through these
 * names, so a port to a compiler without <stdatomic.h> changes one file. */
#ifndef DS_CORE_ATOMIC_H
#define DS_CORE_ATOMIC_H

#include <stdatomic.h>
#include <stdint.h>

typedef _Atomic int64_t ds__atomic_i64;
typedef _Atomic uint64_t ds__atomic_u64;
typedef _Atomic int ds__atomic_int;
typedef _Atomic uint8_t ds__atomic_u8;
typedef _Atomic(void *) ds__atomic_ptr;

#define ds__load(p) atomic_load_explicit((p), memory_order_acquire)
#define ds__load_relaxed(p) atomic_load_explicit((p), memory_order_relaxed)
#define ds__store(p, v) atomic_store_explicit((p), (v), memory_order_release)
#define ds__store_relaxed(p, v) atomic_store_explicit((p), (v), memory_order_relaxed)
#define ds__fetch_add(p, v) atomic_fetch_add_explicit((p), (v), memory_order_acq_rel)
#define ds__fetch_add_relaxed(p, v) atomic_fetch_add_explicit((p), (v), memory_order_relaxed)
#define ds__fetch_sub(p, v) atomic_fetch_sub_explicit((p), (v), memory_order_acq_rel)
#define ds__exchange(p, v) atomic_exchange_explicit((p), (v), memory_order_acq_rel)
#define ds__cas(p, expected, desired) \
  atomic_compare_exchange_strong_explicit((p), (expected), (desired), memory_order_acq_rel, \
                                          memory_order_acquire)
/* Sequentially consistent operations, for protocols (the scheduler's Chase-Lev deques) whose
 * store-then-load order between two variables must hold; ThreadSanitizer models these, where
 * it does not model a standalone fence. */
#define ds__load_seq_cst(p) atomic_load_explicit((p), memory_order_seq_cst)
#define ds__store_seq_cst(p, v) atomic_store_explicit((p), (v), memory_order_seq_cst)
#define ds__fetch_add_seq_cst(p, v) atomic_fetch_add_explicit((p), (v), memory_order_seq_cst)
#define ds__cas_seq_cst(p, expected, desired) \
  atomic_compare_exchange_strong_explicit((p), (expected), (desired), memory_order_seq_cst, \
                                          memory_order_relaxed)
#define ds__fence_acquire() atomic_thread_fence(memory_order_acquire)
#define ds__fence_release() atomic_thread_fence(memory_order_release)
#define ds__fence_seq_cst() atomic_thread_fence(memory_order_seq_cst)
/* Orders against the compiler only; the other side of the pair then issues a process-wide
 * barrier (membarrier), as in asymmetric Dekker synchronisation. */
#define ds__compiler_fence() atomic_signal_fence(memory_order_seq_cst)

#endif /* DS_CORE_ATOMIC_H */
