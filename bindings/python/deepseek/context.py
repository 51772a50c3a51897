"""The Context (ds_context) and what hangs directly off it: tunables, config, logging,
stats, telemetry, topology and trace."""

import ctypes
import math
import weakref

from . import _lib
from ._lib import lib
from .errors import DeepseekError, check

LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR, LOG_OFF = range(5)
NO_ENV = 0x1


def param_number(param):
    """A ds_param number from a number or a name ("sched_workers", "DS_SCHED_WORKERS")."""
    if isinstance(param, int):
        return param
    out = ctypes.c_int()
    check(lib.ds_param_from_name(ctypes.byref(out), param.encode()))
    return out.value


def param_info(param):
    """(name, default, min, max) of a tunable. Needs no context."""
    p = param_number(param)
    lo, hi, dflt = ctypes.c_int64(), ctypes.c_int64(), ctypes.c_int64()
    check(lib.ds_param_bounds(p, ctypes.byref(lo), ctypes.byref(hi)))
    check(lib.ds_param_default(p, ctypes.byref(dflt)))
    return lib.ds_param_name(p).decode(), dflt.value, lo.value, hi.value


def version():
    """The library's version string ("0.1.0")."""
    return lib.ds_version_string().decode()


def build_summary():
    return lib.ds_build_summary().decode()


def build_features():
    return lib.ds_build_features()


def stats_dir():
    buf = ctypes.create_string_buffer(4096)
    check(lib.ds_stats_dir(buf, len(buf)))
    return buf.value.decode()


def _stats_to_dict(handle):
    out = {}
    st = _lib.Stat()
    try:
        for i in range(lib.ds_stats_count(handle)):
            check(lib.ds_stats_at(ctypes.byref(st), handle, i))
            out[st.name.decode()] = st.value
    finally:
        lib.ds_stats_free(handle)
    return out


def stats_file_read(path):
    """Stats of a running process from its stats file, as {name: value}."""
    h = ctypes.c_void_p()
    check(lib.ds_stats_file_read(ctypes.byref(h), path.encode()))
    return _stats_to_dict(h)


class Context:
    """A ds_context: the root every other object is created from.

    ``Context(name="job", params={"sched_workers": 2}, log_level=LOG_INFO, no_env=False,
    config_path=None, log=callable)``. Use it as a context manager, or call close(). Objects
    made from a context (caches, batchers, ...) must be closed before it; close() closes any
    still open, newest first. Every method is thread-safe (as the C functions are).
    ``log``, if given, is called as log(level, module, message) from library threads.
    """

    def __init__(self, name=None, params=None, log_level=None, no_env=False, config_path=None,
                 log=None):
        opts = _lib.ContextOptions()
        opts.struct_size = ctypes.sizeof(opts)
        opts.header_version = lib.ds_version_number()
        opts.flags = NO_ENV if no_env else 0
        opts.log_level = -1 if log_level is None else int(log_level)
        self._log_cb = None
        if log is not None:
            self._log_cb = _lib.LOG_FN(
                lambda _u, lvl, mod, msg: log(lvl, mod.decode(), msg.decode(errors="replace")))
            opts.log_fn = self._log_cb
        items = [(param_number(k), int(v)) for k, v in (params or {}).items()]
        pv = (_lib.ParamValue * max(len(items), 1))()
        for i, (k, v) in enumerate(items):
            pv[i].param, pv[i].value = k, v
        opts.params = pv
        opts.nparams = len(items)
        opts.config_path = config_path.encode() if config_path else None
        opts.name = name.encode() if name else None
        h = ctypes.c_void_p()
        check(lib.ds_context_create(ctypes.byref(h), ctypes.byref(opts)))
        self._h = h
        self._children = []
        # Task and request handles still held by Python objects: released before the context
        # is destroyed (the C API requires it), whoever keeps the objects afterwards.
        self._handles = weakref.WeakSet()

    # -- lifetime
    @property
    def handle(self):
        if self._h is None or not self._h.value:
            raise DeepseekError("context is closed")
        return self._h

    def _adopt(self, child):
        self._children.append(child)

    def _forget(self, child):
        try:
            self._children.remove(child)
        except ValueError:
            pass

    def _track(self, handle_owner):
        self._handles.add(handle_owner)

    def close(self):
        """Closes the objects made from this context, releases the task and request handles
        still held, then destroys it. Harmless twice."""
        while self._children:
            self._children[-1].close()
        for owner in list(self._handles):
            owner.release()
        if self._h is not None and self._h.value:
            lib.ds_context_destroy(self._h)
        self._h = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    def check(self, status):
        """Raises the exception for ``status`` with this context's last error detail."""
        check(status, self.handle)

    @property
    def last_error(self):
        return lib.ds_context_last_error(self.handle).decode(errors="replace")

    # -- tunables
    def set_param(self, param, value):
        self.check(lib.ds_context_set_param(self.handle, param_number(param), int(value)))

    def get_param(self, param):
        out = ctypes.c_int64()
        self.check(lib.ds_context_get_param(self.handle, param_number(param),
                                            ctypes.byref(out)))
        return out.value

    def load_config(self, path):
        self.check(lib.ds_context_load_config(self.handle, path.encode()))

    def set_log(self, level, log=None):
        """New threshold and sink (log(level, module, message); None: stderr)."""
        cb = _lib.LOG_FN() if log is None else _lib.LOG_FN(
            lambda _u, lvl, mod, msg: log(lvl, mod.decode(), msg.decode(errors="replace")))
        self.check(lib.ds_context_set_log(self.handle, int(level), cb, None))
        self._log_cb = cb  # the library keeps the pointer: keep the callback alive

    # -- stats
    def stats(self):
        """Current stats as {name: value} (gauges not yet set are NaN)."""
        h = ctypes.c_void_p()
        self.check(lib.ds_stats_snapshot(ctypes.byref(h), self.handle))
        return _stats_to_dict(h)

    def stat(self, name):
        """One stat's value, or raises NotFoundError."""
        h = ctypes.c_void_p()
        self.check(lib.ds_stats_snapshot(ctypes.byref(h), self.handle))
        try:
            v = ctypes.c_double(math.nan)
            check(lib.ds_stats_find(ctypes.byref(v), h, name.encode()))
            return v.value
        finally:
            lib.ds_stats_free(h)

    def stats_snapshot_info(self):
        """(pid, label) of this context's stats."""
        h = ctypes.c_void_p()
        self.check(lib.ds_stats_snapshot(ctypes.byref(h), self.handle))
        try:
            label = lib.ds_stats_label(h)
            return lib.ds_stats_pid(h), (label or b"").decode()
        finally:
            lib.ds_stats_free(h)

    @property
    def stats_file(self):
        p = lib.ds_stats_file_path(self.handle)
        return p.decode() if p else None

    # -- telemetry
    def telemetry(self):
        """Latest telemetry sample as a dict (unmeasured fields are NaN)."""
        s = _lib.TelemetrySample()
        s.struct_size = ctypes.sizeof(s)
        self.check(lib.ds_telemetry_latest(ctypes.byref(s), self.handle))
        return {f: getattr(s, f) for f, _ in _lib.TelemetrySample._fields_
                if f != "struct_size"}

    def telemetry_window(self, max_samples=64):
        arr = (_lib.TelemetrySample * max_samples)()
        arr[0].struct_size = ctypes.sizeof(_lib.TelemetrySample)
        n = ctypes.c_size_t()
        self.check(lib.ds_telemetry_window(arr, ctypes.byref(n), self.handle, max_samples))
        return [{f: getattr(arr[i], f) for f, _ in _lib.TelemetrySample._fields_
                 if f != "struct_size"} for i in range(n.value)]

    def telemetry_cores(self, max_cores=1024):
        arr = (ctypes.c_float * max_cores)()
        n = ctypes.c_size_t()
        self.check(lib.ds_telemetry_cores(arr, ctypes.byref(n), self.handle, max_cores))
        return list(arr[:n.value])

    def telemetry_sample_now(self):
        self.check(lib.ds_telemetry_sample_now(self.handle))

    # -- topology
    def topology(self):
        t = _lib.TopologyInfo()
        t.struct_size = ctypes.sizeof(t)
        self.check(lib.ds_topology_get(ctypes.byref(t), self.handle))
        return {"packages": t.packages, "numa_nodes": t.numa_nodes, "cores": t.cores,
                "pus": t.pus, "cuda_devices": t.cuda_devices,
                "total_memory_bytes": t.total_memory_bytes,
                "cache_bytes": list(t.cache_bytes), "cache_count": list(t.cache_count)}

    def numa_node(self, index):
        n = _lib.NumaNodeInfo()
        n.struct_size = ctypes.sizeof(n)
        self.check(lib.ds_topology_numa_node(ctypes.byref(n), self.handle, index))
        return {"os_index": n.os_index, "cores": n.cores, "pus": n.pus,
                "memory_bytes": n.memory_bytes}

    def cuda_device(self, index):
        d = _lib.CudaDeviceInfo()
        d.struct_size = ctypes.sizeof(d)
        self.check(lib.ds_topology_cuda_device(ctypes.byref(d), self.handle, index))
        return {"index": d.index, "name": d.name.decode(), "sm_count": d.sm_count,
                "cc": (d.cc_major, d.cc_minor), "memory_bytes": d.memory_bytes}

    # -- trace
    def trace_start(self, path):
        self.check(lib.ds_trace_start(self.handle, path.encode()))

    def trace_stop(self):
        self.check(lib.ds_trace_stop(self.handle))

    @property
    def tracing(self):
        return bool(lib.ds_trace_enabled(self.handle))

    def trace_span(self, category, name):
        """A span as a context manager: ``with ctx.trace_span("py", "step"): ...``."""
        return _Span(self, category, name)

    def trace_complete(self, category, name, start_ns, duration_ns):
        lib.ds_trace_complete(self.handle, category.encode(), name.encode(), start_ns,
                              duration_ns)

    def trace_instant(self, category, name):
        lib.ds_trace_instant(self.handle, category.encode(), name.encode())

    def trace_counter(self, name, value):
        lib.ds_trace_counter(self.handle, name.encode(), float(value))

    @property
    def trace_dropped(self):
        return lib.ds_trace_dropped(self.handle)

    @staticmethod
    def now_ns():
        return lib.ds_trace_now_ns()


class _Span:
    def __init__(self, ctx, category, name):
        self._ctx, self._cat, self._name = ctx, category.encode(), name.encode()

    def __enter__(self):
        lib.ds_trace_begin(self._ctx.handle, self._cat, self._name)
        return self

    def __exit__(self, *exc):
        lib.ds_trace_end(self._ctx.handle)


class Child:
    """Base of objects created from a Context: closed with it, usable as context managers."""

    _destroy = None  # the ds_..._destroy function

    def __init__(self, ctx, handle):
        self.ctx = ctx
        self._h = handle
        ctx._adopt(self)

    @property
    def handle(self):
        if self._h is None or not self._h.value:
            raise DeepseekError("%s is closed" % type(self).__name__)
        return self._h

    def close(self):
        h, self._h = self._h, None
        if h is not None and h.value:
            type(self)._destroy(h)
        self.ctx._forget(self)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
