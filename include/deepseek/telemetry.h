/* libdeepseek: the telemetry sampler (what the load predictor and the scheduler read). */
#ifndef DEEPSEEK_TELEMETRY_H
#define DEEPSEEK_TELEMETRY_H

#include <stddef.h>
#include <stdint.h>

#include "deepseek/context.h"

/** @defgroup telemetry Telemetry
 *  A sampler thread per context (period DS_PARAM_TELEMETRY_PERIOD_MS) keeps the last
 *  DS_PARAM_TELEMETRY_CAPACITY samples in a ring. A quantity that cannot be measured on this
 *  machine is NaN and its bit in @c valid is clear: never a fake 0. All functions are
 *  thread-safe. A new period set with ds_context_set_param() takes effect at the next tick,
 *  and within 250 ms when it shortens a long one.
 *
 *  The first sample (seq 0) is taken inside ds_context_create(), so ds_telemetry_latest()
 *  works at once. Its cpu_util and per-CPU values are NaN: utilisation is a delta of two
 *  /proc/stat readings, and creation only takes the first one (rather than stall for a
 *  meaningful interval). It also has no net_latency_us: the peer is first probed by the
 *  sampler thread, so that creation never waits on a name lookup or a connect. A later sample
 *  whose CPU counters have not advanced since the previous one (possible with a period of a
 *  few ms: the kernel counts in 10 ms ticks) has cpu_util NaN as well, and the next sample
 *  then measures over the longer interval.
 *
 *  The network probe connects to the peer (ds_context_options.telemetry_peer) at most every
 *  DS_PARAM_TELEMETRY_NET_PERIOD_MS, with a timeout of min(period, 1 s); samples in between
 *  repeat the last result, and a failed connect makes the value NaN until one succeeds.
 *  @{ */

/** ds_telemetry_sample.valid bits */
#define DS_TELEMETRY_CPU 0x1u    /**< cpu_util (from /proc/stat) */
#define DS_TELEMETRY_MEM 0x2u    /**< mem_used (from /proc/meminfo) */
#define DS_TELEMETRY_PSI 0x4u    /**< mem_pressure is the kernel's PSI; else it is mem_used */
#define DS_TELEMETRY_GPU 0x8u    /**< gpu_util and gpu_mem_used (NVML) */
#define DS_TELEMETRY_QUEUE 0x10u /**< queue_depth (filled by the scheduler) */
#define DS_TELEMETRY_NET 0x20u   /**< net_latency_us (TCP connect round trip to the peer) */

typedef struct ds_telemetry_sample {
  uint32_t struct_size; /**< set by the caller: sizeof(ds_telemetry_sample) */
  uint32_t valid;       /**< DS_TELEMETRY_* bits of the fields measured */
  uint64_t seq;         /**< 0, 1, 2… per context */
  uint64_t time_ns;     /**< CLOCK_MONOTONIC */
  float cpu_util;       /**< 0..1, whole machine, since the previous sample */
  float mem_used;       /**< 0..1, 1 - MemAvailable/MemTotal */
  float mem_pressure;   /**< 0..1, PSI "some avg10"/100 when DS_TELEMETRY_PSI, else mem_used */
  float gpu_util;       /**< 0..1, mean over GPUs */
  float gpu_mem_used;   /**< 0..1, used/total over GPUs */
  float queue_depth;    /**< tasks waiting in the scheduler */
  float net_latency_us; /**< last TCP connect round trip, microseconds */
  uint32_t ncores;      /**< per-CPU values available through ds_telemetry_cores() */
} ds_telemetry_sample;
#define DS_TELEMETRY_SAMPLE_INIT { sizeof(ds_telemetry_sample), 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0 }

DS_EXTERN_C_BEGIN
/** Latest sample. Set @p out->struct_size first: any size this structure has had (from the
 *  fields up to time_ns to sizeof(ds_telemetry_sample), a multiple of 8); that many bytes are
 *  written and struct_size keeps the caller's value.
 *  @return DS_OK; DS_ERR_UNAVAILABLE (sampler disabled, or no sample yet);
 *  DS_ERR_ABI (struct_size); DS_ERR_INVALID_ARG (NULL argument). Thread-safe; never waits for
 *  a measurement in progress. */
DS_API ds_status ds_telemetry_latest(ds_telemetry_sample *out, ds_context *ctx);

/** Up to @p max most recent samples, oldest first, into @p out (each element's struct_size is
 *  taken from out[0].struct_size, which is also the stride); @p count receives how many (0 on
 *  error). At most DS_PARAM_TELEMETRY_CAPACITY samples are kept. @return as
 *  ds_telemetry_latest, and DS_ERR_INVALID_ARG for @p max 0 (DS_OK with *count 0 is not
 *  returned: no sample gives DS_ERR_UNAVAILABLE). Thread-safe. */
DS_API ds_status ds_telemetry_window(ds_telemetry_sample *out, size_t *count, ds_context *ctx,
                                     size_t max);

/** Per-CPU utilisation (0..1) of the latest sample: one value per logical CPU (the cpuN lines
 *  of /proc/stat, i.e. per hardware thread), in OS order, at most @p max values; @p count
 *  receives how many. A CPU without a value (offline, or no delta yet) is NaN.
 *  @return as ds_telemetry_latest, and DS_ERR_INVALID_ARG for @p max 0. Thread-safe. */
DS_API ds_status ds_telemetry_cores(float *out, size_t *count, ds_context *ctx, size_t max);

/** Takes one sample now, from the calling thread, in addition to the sampler's (it gets the
 *  next seq). Thread-safe: samples are taken one at a time, so this may wait for one under
 *  way, at worst a network probe's timeout. @return DS_OK, DS_ERR_UNAVAILABLE (telemetry
 *  disabled), DS_ERR_INVALID_ARG. */
DS_API ds_status ds_telemetry_sample_now(ds_context *ctx);
DS_EXTERN_C_END
/** @} */

#endif /* DEEPSEEK_TELEMETRY_H */
