"""Loads libdeepseek.so and declares the C structures and function prototypes (ctypes).

This module owns the one place where the C ABI is spelled out in Python. Everything else in
the package calls ``lib.ds_...`` through the prototypes declared here. The structures mirror
include/deepseek/*.h field for field; their ``struct_size`` is always set from ``sizeof``.

Finding the library, in order: $DEEPSEEK_LIBRARY (a path to the .so), a libdeepseek.so copied
into this package's folder, the library `make install` installed with the package
(_libpath.py), then the dynamic linker's search path (ctypes.util.find_library).
"""

import ctypes
import ctypes.util
import os
from ctypes import (CFUNCTYPE, POINTER, Structure, c_char, c_char_p, c_double, c_float, c_int,
                    c_int32, c_int64, c_size_t, c_uint, c_uint8, c_uint16, c_uint32, c_uint64,
                    c_void_p)

TENSOR_MAX_DIMS = 8
TOPOLOGY_CACHE_LEVELS = 4
BATCH_MAX_SIZES = 8


def _find_library():
    env = os.environ.get("DEEPSEEK_LIBRARY")
    if env:
        return env
    here = os.path.dirname(os.path.abspath(__file__))
    for name in ("libdeepseek.so", "libdeepseek.so.0"):
        cand = os.path.join(here, name)
        if os.path.exists(cand):
            return cand
    try:  # written by make install
        from ._libpath import LIBRARY
        if os.path.exists(LIBRARY):
            return LIBRARY
    except ImportError:
        pass
    found = ctypes.util.find_library("deepseek")
    if found:
        return found
    raise OSError("libdeepseek.so not found: set DEEPSEEK_LIBRARY to its path, or install the "
                  "library where the dynamic linker finds it (make install)")


# ---------------------------------------------------------------- structures (core, tensor)

class ParamValue(Structure):
    _fields_ = [("param", c_int32), ("reserved", c_int32), ("value", c_int64)]


LOG_FN = CFUNCTYPE(None, c_void_p, c_int, c_char_p, c_char_p)


class Allocator(Structure):
    _fields_ = [("alloc", c_void_p), ("free", c_void_p), ("user", c_void_p)]


class ContextOptions(Structure):
    _fields_ = [("struct_size", c_uint32), ("header_version", c_uint32), ("flags", c_uint32),
                ("log_level", c_int32), ("log_fn", LOG_FN), ("log_user", c_void_p),
                ("allocator", POINTER(Allocator)), ("config_path", c_char_p),
                ("params", POINTER(ParamValue)), ("nparams", c_size_t),
                ("telemetry_peer", c_char_p), ("name", c_char_p)]


class Device(Structure):
    _fields_ = [("type", c_int32), ("index", c_int32)]


class CTensor(Structure):
    _fields_ = [("data", c_void_p), ("dtype", c_int32), ("ndim", c_int32),
                ("shape", c_int64 * TENSOR_MAX_DIMS), ("strides", c_int64 * TENSOR_MAX_DIMS),
                ("device", Device)]


class DLDevice(Structure):
    _fields_ = [("device_type", c_int32), ("device_id", c_int32)]


class DLDataType(Structure):
    _fields_ = [("code", c_uint8), ("bits", c_uint8), ("lanes", c_uint16)]


class DLTensor(Structure):
    _fields_ = [("data", c_void_p), ("device", DLDevice), ("ndim", c_int32),
                ("dtype", DLDataType), ("shape", POINTER(c_int64)),
                ("strides", POINTER(c_int64)), ("byte_offset", c_uint64)]


class DLManagedTensor(Structure):
    pass


DL_DELETER = CFUNCTYPE(None, POINTER(DLManagedTensor))
DLManagedTensor._fields_ = [("dl_tensor", DLTensor), ("manager_ctx", c_void_p),
                            ("deleter", DL_DELETER)]

RELEASE_FN = CFUNCTYPE(None, c_void_p)


class Stat(Structure):
    _fields_ = [("name", c_char_p), ("kind", c_int32), ("reserved", c_int32),
                ("value", c_double)]


class TelemetrySample(Structure):
    _fields_ = [("struct_size", c_uint32), ("valid", c_uint32), ("seq", c_uint64),
                ("time_ns", c_uint64), ("cpu_util", c_float), ("mem_used", c_float),
                ("mem_pressure", c_float), ("gpu_util", c_float), ("gpu_mem_used", c_float),
                ("queue_depth", c_float), ("net_latency_us", c_float), ("ncores", c_uint32)]


class TopologyInfo(Structure):
    _fields_ = [("struct_size", c_uint32), ("packages", c_int32), ("numa_nodes", c_int32),
                ("cores", c_int32), ("pus", c_int32), ("cuda_devices", c_int32),
                ("total_memory_bytes", c_uint64),
                ("cache_bytes", c_uint64 * TOPOLOGY_CACHE_LEVELS),
                ("cache_count", c_int32 * TOPOLOGY_CACHE_LEVELS)]


class NumaNodeInfo(Structure):
    _fields_ = [("struct_size", c_uint32), ("os_index", c_int32), ("cores", c_int32),
                ("pus", c_int32), ("memory_bytes", c_uint64)]


class CudaDeviceInfo(Structure):
    _fields_ = [("struct_size", c_uint32), ("index", c_int32), ("name", c_char * 256),
                ("sm_count", c_int32), ("cc_major", c_int32), ("cc_minor", c_int32),
                ("memory_bytes", c_uint64)]


# ---------------------------------------------------------------- scheduler

TASK_FN = CFUNCTYPE(c_int, c_void_p)
TASK_DONE_FN = CFUNCTYPE(None, c_void_p, c_void_p, c_int)


class TaskOptions(Structure):
    _fields_ = [("struct_size", c_uint32), ("prio", c_int32), ("name", c_char_p),
                ("deps", POINTER(c_void_p)), ("ndeps", c_size_t), ("group", c_void_p),
                ("on_done", TASK_DONE_FN), ("on_done_user", c_void_p),
                ("deadline_ns", c_uint64), ("cost_ns", c_uint64), ("device", c_int32),
                ("worker", c_int32), ("data", c_void_p)]


# ---------------------------------------------------------------- cache

CACHE_FREE_FN = CFUNCTYPE(None, c_void_p, c_void_p)


class CacheOptions(Structure):
    _fields_ = [("struct_size", c_uint32), ("flags", c_uint32), ("l1_bytes", c_uint64),
                ("l2_bytes", c_uint64), ("codec", c_int32), ("zstd_level", c_int32),
                ("policy", c_char_p), ("shards", c_uint32), ("prefetch_depth", c_uint32),
                ("gpu_bytes", c_uint64), ("gpu_device", c_int32)]


class CachePersistOptions(Structure):
    _fields_ = [("struct_size", c_uint32), ("codec", c_int32), ("zstd_level", c_int32),
                ("durability", c_int32), ("sync_interval_ms", c_uint32),
                ("read_only", c_uint32), ("max_bytes", c_uint64)]


class CacheTierStats(Structure):
    _fields_ = [("struct_size", c_uint32), ("tier", c_uint32), ("bytes", c_uint64),
                ("raw_bytes", c_uint64), ("entries", c_uint64), ("hits", c_uint64),
                ("misses", c_uint64), ("evictions", c_uint64), ("rejected", c_uint64),
                ("compression_ratio", c_double), ("p50_ns", c_double), ("p99_ns", c_double),
                ("corrupt", c_uint64), ("io_errors", c_uint64), ("prefetched", c_uint64)]


# ---------------------------------------------------------------- batcher

class Batch(Structure):
    _fields_ = [("input", POINTER(CTensor)), ("output", POINTER(CTensor)),
                ("nrequests", c_int32), ("prio", c_int32), ("shapes", POINTER(c_int64))]


BATCH_HANDLER_FN = CFUNCTYPE(c_int, c_void_p, POINTER(Batch))
BATCH_DONE_FN = CFUNCTYPE(None, c_void_p, c_void_p, c_int)


class BatcherOptions(Structure):
    _fields_ = [("struct_size", c_uint32), ("handler", BATCH_HANDLER_FN),
                ("handler_user", c_void_p), ("name", c_char_p), ("max_batch_size", c_int32),
                ("max_queue_delay_us", c_int64), ("max_inflight", c_int32),
                ("max_queue_size", c_int32), ("full_policy", c_int32), ("dtype", c_int32),
                ("ndim", c_int32), ("shape", c_int64 * TENSOR_MAX_DIMS),
                ("max_shape", c_int64 * TENSOR_MAX_DIMS), ("output_dtype", c_int32),
                ("output_ndim", c_int32), ("output_shape", c_int64 * TENSOR_MAX_DIMS),
                ("preferred_batch_sizes", POINTER(c_int32)), ("npreferred", c_size_t),
                ("allowed_batch_sizes", POINTER(c_int32)), ("nallowed", c_size_t),
                ("bucket_bounds", POINTER(c_int64)), ("nbuckets", c_size_t)]


class BatchSubmitOptions(Structure):
    _fields_ = [("struct_size", c_uint32), ("prio", c_int32), ("timeout_us", c_int64),
                ("on_done", BATCH_DONE_FN), ("user", c_void_p)]


class BatcherStats(Structure):
    _fields_ = [("struct_size", c_uint32), ("submitted", c_uint64), ("completed", c_uint64),
                ("failed", c_uint64), ("rejected", c_uint64), ("invalid", c_uint64),
                ("timed_out", c_uint64), ("cancelled", c_uint64), ("batches", c_uint64),
                ("queued", c_uint64), ("mean_batch_size", c_double), ("fill_ratio", c_double),
                ("padding_waste", c_double), ("queue_delay_p50_us", c_double),
                ("queue_delay_p99_us", c_double), ("latency_p50_us", c_double),
                ("latency_p99_us", c_double)]


# ---------------------------------------------------------------- precision

class PrecisionRule(Structure):
    _fields_ = [("pattern", c_char_p), ("dtype", c_int32)]


class PrecisionPolicyOptions(Structure):
    _fields_ = [("struct_size", c_uint32), ("rules", POINTER(PrecisionRule)),
                ("nrules", c_size_t), ("fallback_threshold", c_float),
                ("check_interval", c_uint32), ("demote_after", c_uint32),
                ("native_bf16", c_int32), ("bf16_fallback", c_int32), ("device", Device)]


class PrecisionSwitch(Structure):
    _fields_ = [("step", c_uint64), ("from_", c_int32), ("to", c_int32), ("reason", c_int32),
                ("score", c_float)]


class PrecisionLayerInfo(Structure):
    _fields_ = [("rule_dtype", c_int32), ("base_dtype", c_int32), ("dtype", c_int32),
                ("clean_checks", c_uint32), ("checks", c_uint64), ("switches", c_uint64),
                ("last_score", c_float)]


class LossScalerOptions(Structure):
    _fields_ = [("struct_size", c_uint32), ("init_scale", c_float), ("growth_factor", c_float),
                ("backoff_factor", c_float), ("growth_interval", c_uint32),
                ("hysteresis", c_uint32), ("min_scale", c_float)]


class OptimizerOptions(Structure):
    _fields_ = [("struct_size", c_uint32), ("kind", c_int32), ("lr", c_float),
                ("momentum", c_float), ("beta1", c_float), ("beta2", c_float), ("eps", c_float),
                ("weight_decay", c_float), ("state_dtype", c_int32), ("split_master", c_int32)]


class OptimizerMemory(Structure):
    _fields_ = [("struct_size", c_uint32), ("master_bytes", c_uint64), ("state_bytes", c_uint64),
                ("working_bytes", c_uint64), ("total_bytes", c_uint64),
                ("fp32_equivalent", c_uint64), ("saved_fraction", c_double),
                ("f32_bytes", c_uint64), ("bf16_bytes", c_uint64), ("f16_bytes", c_uint64),
                ("low16_bytes", c_uint64), ("scratch_bytes", c_uint64)]


# ---------------------------------------------------------------- predictor

class PredictorOptions(Structure):
    _fields_ = [("struct_size", c_uint32), ("nfeatures", c_uint32), ("window", c_uint32),
                ("hidden", c_uint32), ("layers", c_uint32), ("horizons", c_uint32),
                ("target", c_uint32), ("overload_threshold", c_float), ("seed", c_uint64)]


class PredictorSeries(Structure):
    _fields_ = [("data", POINTER(c_float)), ("nsteps", c_size_t), ("valid", POINTER(c_uint8))]


class PredictorTrainOptions(Structure):
    _fields_ = [("struct_size", c_uint32), ("max_epochs", c_uint32), ("patience", c_uint32),
                ("batch", c_uint32), ("windows_per_epoch", c_uint32),
                ("max_val_windows", c_uint32), ("lr", c_float), ("weight_decay", c_float),
                ("clip_norm", c_float), ("overload_weight", c_float), ("seed", c_uint64),
                ("normalize", c_uint32), ("loss", c_uint32)]


class PredictorTrainReport(Structure):
    _fields_ = [("struct_size", c_uint32), ("epochs", c_uint32), ("best_epoch", c_uint32),
                ("reserved", c_uint32), ("best_val_loss", c_double),
                ("last_train_loss", c_double), ("steps", c_uint64)]


# ---------------------------------------------------------------- compute fabric

class FabricDeviceInfo(Structure):
    _fields_ = [("struct_size", c_uint32), ("index", c_int32), ("kind", c_int32),
                ("memory_space", c_int32), ("numa_node", c_int32), ("compute_units", c_int32),
                ("caps", c_uint32), ("memory_bytes", c_uint64), ("name", c_char * 128),
                ("backend", c_char * 32)]


class BufferOptions(Structure):
    _fields_ = [("struct_size", c_uint32), ("name", c_char_p), ("home_device", c_int32),
                ("flags", c_uint32), ("device_mask", c_uint64)]


class FabricBarrierOptions(Structure):
    _fields_ = [("struct_size", c_uint32), ("participants", c_uint32), ("spin_ns", c_int64),
                ("name", c_char_p)]


# ---------------------------------------------------------------- fabric graphs

KERNEL_CPU_FN = CFUNCTYPE(c_int, POINTER(c_void_p), POINTER(c_size_t), c_size_t, c_void_p,
                          c_size_t)


class KernelOptions(Structure):
    _fields_ = [("struct_size", c_uint32), ("name", c_char_p), ("cpu", KERNEL_CPU_FN),
                ("cuda", c_void_p), ("opencl_source", c_char_p), ("opencl_name", c_char_p),
                ("opencl_arg_sizes", POINTER(c_uint32)), ("opencl_nargs", c_uint32),
                ("model_cache", c_void_p)]


class GraphAccess(Structure):
    _fields_ = [("buf", c_void_p), ("mode", c_int32)]


class NodeOptions(Structure):
    _fields_ = [("struct_size", c_uint32), ("name", c_char_p), ("args", c_void_p),
                ("args_len", c_size_t), ("size", c_uint64), ("global_", c_uint64 * 3),
                ("device", c_int32)]


class PlanOptions(Structure):
    _fields_ = [("struct_size", c_uint32), ("policy", c_int32), ("device", c_int32),
                ("seed", c_uint64), ("placement", POINTER(c_int32)), ("calibrate", c_int32)]


class PlanInfo(Structure):
    _fields_ = [("struct_size", c_uint32), ("nodes", c_uint32), ("makespan_s", c_double),
                ("bytes_moved", c_uint64), ("calibrating", c_uint32)]


class GraphRunInfo(Structure):
    _fields_ = [("struct_size", c_uint32), ("makespan_s", c_double), ("bytes_moved", c_uint64)]


# ---------------------------------------------------------------- fabric: MPI transport

class MpiOptions(Structure):
    _fields_ = [("struct_size", c_uint32), ("finalize", c_int32), ("migrate", c_int32)]


class MpiCall(Structure):
    _fields_ = [("args", c_void_p), ("args_len", c_size_t), ("result", c_void_p),
                ("result_cap", c_size_t), ("result_len", c_size_t), ("data", c_void_p),
                ("data_len", c_size_t), ("rank", c_int32)]


MPI_TASK_FN = CFUNCTYPE(c_int, c_void_p, POINTER(MpiCall))


class MpiGraphOptions(Structure):
    _fields_ = [("struct_size", c_uint32), ("placement", POINTER(c_int32)),
                ("plan", POINTER(PlanOptions)), ("timeout_ms", c_int64)]


class MpiGraphInfo(Structure):
    _fields_ = [("struct_size", c_uint32), ("nodes_here", c_uint32), ("sends", c_uint32),
                ("recvs", c_uint32), ("bytes_sent", c_uint64), ("bytes_received", c_uint64),
                ("makespan_s", c_double)]


class MpiSubmitOptions(Structure):
    _fields_ = [("struct_size", c_uint32), ("rank", c_int32), ("buffer", c_uint64),
                ("task", POINTER(TaskOptions))]


# ---------------------------------------------------------------- prototypes

_P = POINTER
_st = c_int  # ds_status
_vp = c_void_p
_fp = _P(c_float)
_T = _P(CTensor)

# name: (restype, [argtypes]). Every function listed here is bound; the module-level check in
# tests/test_exports.py compares this table (plus UNBOUND) with the library's exports.
PROTOTYPES = {
    # version, status, build
    "ds_version_number": (c_uint, []),
    "ds_version_string": (c_char_p, []),
    "ds_status_str": (c_char_p, [c_int]),
    "ds_status_name": (c_char_p, [c_int]),
    "ds_build_features": (c_uint32, []),
    "ds_build_summary": (c_char_p, []),
    # context and tunables
    "ds_context_create": (_st, [_P(_vp), _P(ContextOptions)]),
    "ds_context_destroy": (None, [_vp]),
    "ds_context_last_error": (c_char_p, [_vp]),
    "ds_context_set_param": (_st, [_vp, c_int, c_int64]),
    "ds_context_get_param": (_st, [_vp, c_int, _P(c_int64)]),
    "ds_context_load_config": (_st, [_vp, c_char_p]),
    "ds_context_set_log": (_st, [_vp, c_int, LOG_FN, _vp]),
    "ds_param_bounds": (_st, [c_int, _P(c_int64), _P(c_int64)]),
    "ds_param_default": (_st, [c_int, _P(c_int64)]),
    "ds_param_name": (c_char_p, [c_int]),
    "ds_param_from_name": (_st, [_P(c_int), c_char_p]),
    # tensor and DLPack
    "ds_dtype_size": (c_size_t, [c_int]),
    "ds_dtype_name": (c_char_p, [c_int]),
    "ds_tensor_init": (_st, [_P(CTensor), _vp, _vp, c_int, c_int32, _P(c_int64), _P(c_int64),
                             Device]),
    "ds_tensor_numel": (c_int64, [_P(CTensor)]),
    "ds_tensor_is_contiguous": (c_int, [_P(CTensor)]),
    "ds_tensor_nbytes": (c_size_t, [_P(CTensor)]),
    "ds_tensor_from_dlpack": (_st, [_P(CTensor), _vp, _P(DLManagedTensor)]),
    "ds_tensor_to_dlpack": (_st, [_P(_P(DLManagedTensor)), _vp, _P(CTensor), RELEASE_FN, _vp]),
    # stats, telemetry, topology, trace
    "ds_stats_snapshot": (_st, [_P(_vp), _vp]),
    "ds_stats_file_read": (_st, [_P(_vp), c_char_p]),
    "ds_stats_file_path": (c_char_p, [_vp]),
    "ds_stats_dir": (_st, [c_char_p, c_size_t]),
    "ds_stats_count": (c_size_t, [_vp]),
    "ds_stats_at": (_st, [_P(Stat), _vp, c_size_t]),
    "ds_stats_find": (_st, [_P(c_double), _vp, c_char_p]),
    "ds_stats_pid": (c_int64, [_vp]),
    "ds_stats_label": (c_char_p, [_vp]),
    "ds_stats_free": (None, [_vp]),
    "ds_telemetry_latest": (_st, [_P(TelemetrySample), _vp]),
    "ds_telemetry_window": (_st, [_P(TelemetrySample), _P(c_size_t), _vp, c_size_t]),
    "ds_telemetry_cores": (_st, [_fp, _P(c_size_t), _vp, c_size_t]),
    "ds_telemetry_sample_now": (_st, [_vp]),
    "ds_topology_get": (_st, [_P(TopologyInfo), _vp]),
    "ds_topology_numa_node": (_st, [_P(NumaNodeInfo), _vp, c_int32]),
    "ds_topology_cuda_device": (_st, [_P(CudaDeviceInfo), _vp, c_int32]),
    "ds_trace_start": (_st, [_vp, c_char_p]),
    "ds_trace_stop": (_st, [_vp]),
    "ds_trace_enabled": (c_int, [_vp]),
    "ds_trace_begin": (None, [_vp, c_char_p, c_char_p]),
    "ds_trace_end": (None, [_vp]),
    "ds_trace_complete": (None, [_vp, c_char_p, c_char_p, c_uint64, c_uint64]),
    "ds_trace_instant": (None, [_vp, c_char_p, c_char_p]),
    "ds_trace_counter": (None, [_vp, c_char_p, c_double]),
    "ds_trace_now_ns": (c_uint64, []),
    "ds_trace_dropped": (c_uint64, [_vp]),
    # scheduler
    "ds_sched_start": (_st, [_vp]),
    "ds_sched_workers": (_st, [_vp, _P(c_int32)]),
    "ds_sched_load": (_st, [_vp, _P(c_double), _P(c_int), _P(c_int)]),
    "ds_sched_set_predictor": (_st, [_vp, _vp]),
    "ds_task_submit": (_st, [_P(_vp), _vp, TASK_FN, _vp, _P(TaskOptions)]),
    "ds_task_wait": (_st, [_vp, c_int64]),
    "ds_task_cancel": (_st, [_vp]),
    "ds_task_state": (c_int, [_vp]),
    "ds_task_status": (_st, [_vp]),
    "ds_task_release": (None, [_vp]),
    "ds_task_submit_batch": (_st, [_P(c_size_t), _vp, TASK_FN, _P(_vp), c_size_t, _P(TaskOptions)]),
    "ds_task_cancelled": (c_int, []),
    "ds_task_should_yield": (c_int, []),
    "ds_task_yield": (c_int, []),
    "ds_task_group_create": (_st, [_P(_vp), _vp]),
    "ds_task_group_wait": (_st, [_vp, c_int64]),
    "ds_task_group_destroy": (None, [_vp]),
    # cache
    "ds_cache_create": (_st, [_P(_vp), _vp, _P(CacheOptions)]),
    "ds_cache_open_persistent": (_st, [_P(_vp), _vp, c_char_p, c_uint64, c_int]),
    "ds_cache_open_persistent_ex": (_st, [_P(_vp), _vp, c_char_p, _P(CachePersistOptions)]),
    "ds_cache_destroy": (None, [_vp]),
    "ds_cache_put": (_st, [_vp, c_char_p, c_size_t, _vp, c_size_t]),
    "ds_cache_get": (_st, [_vp, c_char_p, c_size_t, _vp, c_size_t, _P(c_size_t)]),
    "ds_cache_get_stream": (_st, [_vp, c_uint64, c_char_p, c_size_t, _vp, c_size_t,
                                  _P(c_size_t)]),
    "ds_cache_get_ref": (_st, [_vp, c_char_p, c_size_t, _P(_vp), _P(c_size_t), _P(_vp)]),
    "ds_cache_release": (_st, [_vp, _vp]),
    "ds_cache_prefetch": (_st, [_vp, c_char_p, c_size_t]),
    "ds_cache_contains": (c_int, [_vp, c_char_p, c_size_t]),
    "ds_cache_remove": (_st, [_vp, c_char_p, c_size_t]),
    "ds_cache_pin": (_st, [_vp, c_char_p, c_size_t]),
    "ds_cache_unpin": (_st, [_vp, c_char_p, c_size_t]),
    "ds_cache_flush": (_st, [_vp]),
    "ds_cache_stats": (_st, [_vp, c_int, _P(CacheTierStats)]),
    # batcher
    "ds_batcher_create": (_st, [_P(_vp), _vp, _P(BatcherOptions)]),
    "ds_batcher_submit": (_st, [_P(_vp), _vp, _P(CTensor), _P(CTensor),
                                _P(BatchSubmitOptions)]),
    "ds_batch_request_wait": (_st, [_vp, c_int64]),
    "ds_batch_request_cancel": (_st, [_vp]),
    "ds_batch_request_release": (None, [_vp]),
    "ds_batcher_shutdown": (_st, [_vp, c_int]),
    "ds_batcher_destroy": (None, [_vp]),
    "ds_batcher_stats_get": (_st, [_vp, _P(BatcherStats)]),
    "ds_batcher_histogram": (_st, [_vp, _P(c_uint64), c_size_t]),
    # precision: conversion, GEMM, kernels
    "ds_precision_convert": (_st, [_vp, _vp, c_int, _vp, c_int, c_size_t]),
    "ds_precision_convert_tensor": (_st, [_vp, _P(CTensor), _P(CTensor)]),
    "ds_precision_isa_in_use": (c_int, [_vp]),
    "ds_precision_isa_name": (c_char_p, [c_int]),
    "ds_gemm": (_st, [_vp, _P(CTensor), _P(CTensor), _P(CTensor), c_uint32, c_float, c_float]),
    "ds_bias_act_forward": (_st, [_vp, _fp, _fp, _fp, c_int64, c_int64, c_int]),
    "ds_bias_act_backward": (_st, [_vp, _fp, _fp, _fp, _fp, _fp, c_int64, c_int64, c_int]),
    "ds_softmax_forward": (_st, [_vp, _fp, _fp, c_int64, c_int64, c_int]),
    "ds_softmax_backward": (_st, [_vp, _fp, _fp, _fp, c_int64, c_int64, c_int]),
    "ds_layernorm_forward": (_st, [_vp, _fp, _fp, _fp, _fp, _fp, _fp, c_int64, c_int64,
                                   c_float]),
    "ds_layernorm_backward": (_st, [_vp, _fp, _fp, _fp, _fp, _fp, _fp, _fp, _fp, c_int64,
                                    c_int64]),
    "ds_rmsnorm_forward": (_st, [_vp, _fp, _fp, _fp, _fp, c_int64, c_int64, c_float]),
    "ds_rmsnorm_backward": (_st, [_vp, _fp, _fp, _fp, _fp, _fp, _fp, c_int64, c_int64]),
    "ds_cross_entropy": (_st, [_vp, _fp, _fp, _fp, _P(c_int32), c_int64, c_int64]),
    "ds_embedding_forward": (_st, [_vp, _fp, _fp, _P(c_int32), c_int64, c_int64, c_int64]),
    "ds_embedding_backward": (_st, [_vp, _fp, _fp, _P(c_int32), c_int64, c_int64, c_int64]),
    "ds_elementwise": (_st, [_vp, c_int, _fp, _fp, _fp, c_float, c_int64]),
    "ds_reduce": (_st, [_vp, _P(c_double), c_int, _vp, c_int, c_int64]),
    # precision: the kernels on tensors (f32/f16/bf16, CPU or CUDA)
    "ds_bias_act_forward_tensor": (_st, [_vp, _T, _T, _T, c_int]),
    "ds_bias_act_backward_tensor": (_st, [_vp, _T, _T, _T, _T, _T, c_int]),
    "ds_softmax_forward_tensor": (_st, [_vp, _T, _T, c_int]),
    "ds_softmax_backward_tensor": (_st, [_vp, _T, _T, _T, c_int]),
    "ds_layernorm_forward_tensor": (_st, [_vp, _T, _T, _T, _T, _T, _T, c_float]),
    "ds_layernorm_backward_tensor": (_st, [_vp, _T, _T, _T, _T, _T, _T, _T, _T]),
    "ds_rmsnorm_forward_tensor": (_st, [_vp, _T, _T, _T, _T, c_float]),
    "ds_rmsnorm_backward_tensor": (_st, [_vp, _T, _T, _T, _T, _T, _T]),
    "ds_cross_entropy_tensor": (_st, [_vp, _fp, _T, _T, _T]),
    "ds_embedding_forward_tensor": (_st, [_vp, _T, _T, _T]),
    "ds_embedding_backward_tensor": (_st, [_vp, _T, _T, _T]),
    "ds_elementwise_tensor": (_st, [_vp, c_int, _T, _T, _T, c_float]),
    "ds_reduce_tensor": (_st, [_vp, _P(c_double), c_int, _T]),
    # precision: policy, loss scaler, optimiser
    "ds_precision_policy_create": (_st, [_P(_vp), _vp, _P(PrecisionPolicyOptions)]),
    "ds_precision_policy_destroy": (None, [_vp]),
    "ds_precision_policy_dtype": (_st, [_vp, c_char_p, _P(c_int)]),
    "ds_precision_policy_due": (c_int, [_vp, c_uint64]),
    "ds_precision_stability_score": (_st, [_vp, _fp, _vp, c_int, _fp, c_int64]),
    "ds_precision_policy_observe": (_st, [_vp, c_char_p, c_uint64, _vp, c_int, _fp, c_int64,
                                          _P(c_int), _fp]),
    "ds_precision_policy_report": (_st, [_vp, c_char_p, c_uint64, c_float, _P(c_int)]),
    "ds_precision_policy_layer": (_st, [_vp, c_char_p, _P(PrecisionLayerInfo)]),
    "ds_precision_policy_history": (_st, [_vp, c_char_p, _P(PrecisionSwitch), c_size_t,
                                          _P(c_size_t)]),
    "ds_loss_scaler_create": (_st, [_P(_vp), _vp, _P(LossScalerOptions)]),
    "ds_loss_scaler_destroy": (None, [_vp]),
    "ds_loss_scaler_scale": (c_float, [_vp]),
    "ds_loss_scaler_unscale": (_st, [_vp, _fp, _vp, c_int, c_int64, _P(c_int)]),
    "ds_loss_scaler_update": (_st, [_vp, c_int, _P(c_int)]),
    "ds_optimizer_create": (_st, [_P(_vp), _vp, _P(OptimizerOptions)]),
    "ds_optimizer_destroy": (None, [_vp]),
    "ds_optimizer_add_param": (_st, [_vp, c_char_p, _fp, c_int64, c_int]),
    "ds_optimizer_working": (_st, [_vp, c_char_p, _P(_vp), _P(c_int)]),
    "ds_optimizer_master": (_st, [_vp, c_char_p, _P(_fp)]),
    "ds_optimizer_step": (_st, [_vp, c_char_p, _fp]),
    "ds_optimizer_master_read": (_st, [_vp, c_char_p, _fp]),
    "ds_optimizer_step_scaled": (_st, [_vp, c_char_p, _vp, c_int, c_float]),
    "ds_optimizer_step_linear": (_st, [_vp, c_char_p, _P(CTensor), _P(CTensor), c_int64]),
    "ds_optimizer_memory_get": (_st, [_vp, _P(OptimizerMemory)]),
    # predictor
    "ds_predictor_create": (_st, [_P(_vp), _vp, _P(PredictorOptions)]),
    "ds_predictor_destroy": (None, [_vp]),
    "ds_predictor_get_options": (_st, [_P(PredictorOptions), _vp]),
    "ds_predictor_train": (_st, [_vp, _P(PredictorSeries), c_size_t, _P(PredictorSeries),
                                 c_size_t, _P(PredictorTrainOptions),
                                 _P(PredictorTrainReport)]),
    "ds_predictor_forward": (_st, [_vp, _fp, _fp, _fp]),
    "ds_predictor_observe": (_st, [_vp, _fp]),
    "ds_predictor_predict": (_st, [_vp, _fp, _fp]),
    "ds_predictor_save_buffer": (_st, [_vp, _vp, c_size_t, _P(c_size_t)]),
    "ds_predictor_load_buffer": (_st, [_P(_vp), _vp, _vp, c_size_t]),
    "ds_predictor_save": (_st, [_vp, c_char_p]),
    "ds_predictor_load": (_st, [_P(_vp), _vp, c_char_p]),
    "ds_predictor_online_wait": (None, [_vp, _P(c_uint64), _P(c_uint64)]),
    # compute fabric: devices, buffers, events
    "ds_fabric_device_count": (_st, [_P(c_int32), _vp]),
    "ds_fabric_device_info": (_st, [_P(FabricDeviceInfo), _vp, c_int32]),
    "ds_fabric_device_find": (_st, [_P(c_int32), _vp, c_int, c_int32]),
    "ds_fabric_memory_space_count": (_st, [_P(c_int32), _vp]),
    "ds_buffer_create": (_st, [_P(_vp), _vp, c_size_t, _P(BufferOptions)]),
    "ds_buffer_register": (_st, [_P(_vp), _vp, _vp, c_size_t, _P(BufferOptions)]),
    "ds_buffer_destroy": (_st, [_vp]),
    "ds_buffer_size": (c_size_t, [_vp]),
    "ds_buffer_name": (c_char_p, [_vp]),
    "ds_buffer_state": (_st, [_P(c_int), _vp, c_int32]),
    "ds_buffer_acquire": (_st, [_P(_vp), _vp, c_int32, c_int]),
    "ds_buffer_acquire_async": (_st, [_P(_vp), _P(_vp), _vp, c_int32, c_int]),
    "ds_buffer_release": (_st, [_vp, c_int32]),
    "ds_fabric_event_wait": (_st, [_vp]),
    # compute fabric: timestamp barriers
    "ds_fabric_barrier_create": (_st, [_P(_vp), _vp, _P(FabricBarrierOptions)]),
    "ds_fabric_barrier_destroy": (None, [_vp]),
    "ds_fabric_barrier_publish": (_st, [_vp, c_uint32, c_uint64]),
    "ds_fabric_barrier_wait": (_st, [_vp, c_uint64, c_int64]),
    "ds_fabric_barrier_arrive_and_wait": (_st, [_vp, c_uint32, c_int64, _P(c_uint64)]),
    "ds_fabric_barrier_progress": (_st, [_vp, c_uint32, _P(c_uint64)]),
    "ds_fabric_barrier_cancel": (_st, [_vp]),
    "ds_fabric_barrier_publish_opencl": (_st, [_vp, c_uint32, _vp, c_uint64]),
    "ds_fabric_barrier_wait_opencl": (_st, [_vp, _vp, c_uint64, _P(_vp)]),
    "ds_fabric_barrier_publish_cuda": (_st, [_vp, c_uint32, _vp, c_uint64]),
    "ds_fabric_barrier_wait_cuda": (_st, [_vp, _vp, c_uint64]),
    # compute fabric: kernels, graphs, plans
    "ds_kernel_create": (_st, [_P(_vp), _vp, _P(KernelOptions)]),
    "ds_kernel_destroy": (None, [_vp]),
    "ds_kernel_model_save": (_st, [_vp]),
    "ds_kernel_model_record": (_st, [_vp, c_int32, c_uint64, c_double]),
    "ds_kernel_model_predict": (_st, [_vp, c_int32, c_uint64, _P(c_double), _P(c_uint64)]),
    "ds_graph_create": (_st, [_P(_vp), _vp]),
    "ds_graph_destroy": (None, [_vp]),
    "ds_graph_add": (_st, [_P(c_int32), _vp, _vp, _P(GraphAccess), c_size_t, _P(NodeOptions)]),
    "ds_graph_add_dep": (_st, [_vp, c_int32, c_int32]),
    "ds_graph_size": (_st, [_vp, _P(c_uint32), _P(c_uint32)]),
    "ds_graph_plan": (_st, [_P(_vp), _vp, _P(PlanOptions)]),
    "ds_graph_run": (_st, [_vp, _vp, _P(GraphRunInfo)]),
    "ds_plan_destroy": (None, [_vp]),
    "ds_plan_device": (_st, [_vp, c_int32, _P(c_int32)]),
    "ds_plan_get_info": (_st, [_vp, _P(PlanInfo)]),
    # compute fabric: MPI transport
    "ds_mpi_create": (_st, [_P(_vp), _vp, _P(MpiOptions)]),
    "ds_mpi_destroy": (None, [_vp]),
    "ds_mpi_rank": (c_int32, [_vp]),
    "ds_mpi_size": (c_int32, [_vp]),
    "ds_mpi_thread_level": (c_int32, [_vp]),
    "ds_mpi_rank_alive": (c_int, [_vp, c_int32]),
    "ds_mpi_buffer_register": (_st, [_vp, c_uint64, c_int32, _vp, c_size_t]),
    "ds_mpi_buffer_attach": (_st, [_vp, c_uint64, c_int32, _vp]),
    "ds_mpi_buffer_unregister": (_st, [_vp, c_uint64]),
    "ds_mpi_buffer_fetch": (_st, [_vp, c_uint64, _P(_vp), c_int64]),
    "ds_mpi_buffer_flush": (_st, [_vp, c_uint64]),
    "ds_mpi_buffer_written": (_st, [_vp, c_uint64]),
    "ds_mpi_buffer_send": (_st, [_vp, c_uint64, c_int32, c_int64]),
    "ds_mpi_buffer_recv": (_st, [_vp, c_uint64, _P(_vp), c_int64]),
    "ds_mpi_graph_run": (_st, [_vp, _vp, _P(MpiGraphOptions), _P(MpiGraphInfo)]),
    "ds_mpi_task_register": (_st, [_vp, c_char_p, MPI_TASK_FN, _vp]),
    "ds_mpi_task_submit": (_st, [_P(_vp), _vp, c_char_p, _vp, c_size_t, _vp, c_size_t,
                                 _P(c_size_t), _P(MpiSubmitOptions)]),
    "ds_mpi_task_counts": (_st, [_vp, _P(c_uint64), _P(c_uint64)]),
    "ds_mpi_barrier_arrive": (_st, [_vp, c_uint64]),
    "ds_mpi_barrier_wait": (_st, [_vp, c_uint64, c_int64]),
    "ds_mpi_barrier_bridge": (_st, [_vp, _vp, c_uint32]),
}

# Exported functions deliberately left unbound, with the reason (checked by the tests).
UNBOUND = {
    "ds_cache_put_owned": "ownership transfer of a C buffer with a C free function; from "
                          "Python ds_cache_put (which copies) is the safe equivalent",
    "ds_fabric_backend_register": "a backend is a table of C function pointers called under "
                                  "the fabric's buffer mutexes from library threads (copies, "
                                  "events, launches); backends belong in C, next to the "
                                  "device driver they wrap",
}


class _Lib:
    """The loaded library with every prototype applied; attribute access gives the function."""

    def __init__(self, path):
        self.path = path
        self._dll = ctypes.CDLL(path)
        self.missing = []
        for name, (res, args) in PROTOTYPES.items():
            try:
                fn = getattr(self._dll, name)
            except AttributeError:
                # A library older than these bindings: the function raises when called.
                self.missing.append(name)
                continue
            fn.restype = res
            fn.argtypes = args
            setattr(self, name, fn)


lib = _Lib(_find_library())

