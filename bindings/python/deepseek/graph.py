"""Fabric graphs (the "Graphs" part of include/deepseek/fabric.h): kernels with a CPU
implementation (a Python callable) and/or an OpenCL C source, task graphs whose dependencies
follow from buffer accesses, plans that place every node on a device (HEFT by default), and
the kernels' learned cost models.

    import deepseek as ds
    def add(views, args):                      # views: NumPy views of the node's buffers
        a, b, c = views
        c[:] = a + b
    with ds.Context() as ctx:
        k = ds.Kernel(ctx, "vadd", cpu=add, dtypes=np.float32)
        g = ds.Graph(ctx)
        g.add(k, [(A, "r"), (B, "r"), (C, "w")])
        g.run()                                # plans (HEFT) and runs; or g.plan(...).run()

Threading: a Python CPU implementation is called on the scheduler's worker threads; ctypes
takes the GIL for each call, so Python kernels of one process serialize on the GIL (NumPy
operations that release the GIL still overlap). ds_graph_run releases the GIL while it waits.
An exception raised by a Python kernel fails its node (DS_ERR_INTERNAL, or the status of a
DeepseekError) and is chained as the cause of the exception Graph.run raises.

Lifetimes: a Graph keeps its kernels and buffers referenced; closing a Graph closes its
plans first (a C plan refers to its graph), and closing a Kernel closes the graphs that use
it first (a C graph refers to its kernels). Context.close closes everything in that order.
"""

import ctypes
import threading
import weakref
from collections import namedtuple

import numpy as np

from . import _lib
from .context import Child
from .errors import DeepseekError, error_for
from .fabric import Buffer, _index, _mode

# ds_plan_policy
HEFT, DEVICE, RANDOM, EXPLICIT = 0, 1, 2, 3
_POLICIES = {"heft": HEFT, "device": DEVICE, "random": RANDOM, "explicit": EXPLICIT,
             HEFT: HEFT, DEVICE: DEVICE, RANDOM: RANDOM, EXPLICIT: EXPLICIT}

_DS_ERR_INTERNAL = 17
_DS_ERR_NOT_FOUND = 7
_ARGS_MAX = 256
_ACCESS_MAX = 16

PlanInfo = namedtuple("PlanInfo", "nodes makespan_s bytes_moved calibrating")
PlanInfo.__doc__ = "ds_plan_info: predicted makespan (s), bytes moved, calibration nodes."
RunInfo = namedtuple("RunInfo", "makespan_s bytes_moved")
RunInfo.__doc__ = "ds_graph_run_info: measured makespan (s) and bytes the fabric moved."
Prediction = namedtuple("Prediction", "seconds samples")

lib = _lib.lib


def _args_bytes(args):
    """By-value arguments as bytes: bytes-like, a NumPy array/scalar, or a ctypes object."""
    if args is None:
        return b""
    if isinstance(args, (np.ndarray, np.generic)):
        return np.ascontiguousarray(args).tobytes()
    if isinstance(args, (ctypes.Structure, ctypes.Array, ctypes._SimpleCData)):
        return bytes(memoryview(args).cast("B"))
    return bytes(args)


class Kernel(Child):
    """A kernel (ds_kernel): ``Kernel(ctx, name, cpu=None, opencl_source=None,
    opencl_name=None, opencl_arg_sizes=(), model_cache=None, dtypes=None)``.

    ``cpu(views, args)`` is the CPU implementation: ``views`` are writable NumPy views of the
    node's buffers in access order (dtype ``dtypes`` — one dtype for all, or one per access;
    default uint8), ``args`` the node's by-value argument bytes. Return None (or a ds_status
    int). The views are valid only during the call. ``opencl_source``/``opencl_name``: an
    OpenCL C kernel taking the buffers (``__global`` pointers, access order) then the
    by-value arguments split by ``opencl_arg_sizes`` (bytes each). ``model_cache``: a
    persistent ds.Cache that keeps the cost model (loaded now, saved by save_model() and at
    close(): close the kernel before that cache — the context does, in reverse order of
    creation). The model methods are thread-safe."""

    _destroy = lib.ds_kernel_destroy

    def __init__(self, ctx, name, cpu=None, opencl_source=None, opencl_name=None,
                 opencl_arg_sizes=(), model_cache=None, dtypes=None):
        if cpu is not None and not callable(cpu):
            raise TypeError("cpu must be a callable(views, args)")
        self.name = str(name)
        self._fn = cpu
        self._dtypes = dtypes
        self._errors = []
        self._err_lock = threading.Lock()
        self._graphs = weakref.WeakSet()
        # The ctypes callback must outlive every call the library makes: kept on self.
        self._cb = _lib.KERNEL_CPU_FN(self._trampoline) if cpu is not None else None
        sizes = [int(s) for s in opencl_arg_sizes]
        self._cl_sizes = (ctypes.c_uint32 * max(len(sizes), 1))(*sizes)
        o = _lib.KernelOptions()
        o.struct_size = ctypes.sizeof(o)
        o.name = self.name.encode()
        if self._cb is not None:
            o.cpu = self._cb
        o.opencl_source = opencl_source.encode() if opencl_source else None
        o.opencl_name = opencl_name.encode() if opencl_name else None
        o.opencl_arg_sizes = self._cl_sizes if sizes else None
        o.opencl_nargs = len(sizes)
        o.model_cache = model_cache.handle.value if model_cache is not None else None
        self._cache = model_cache
        h = ctypes.c_void_p()
        ctx.check(lib.ds_kernel_create(ctypes.byref(h), ctx.handle, ctypes.byref(o)))
        super().__init__(ctx, h)

    def _dtype(self, i):
        d = self._dtypes
        if isinstance(d, (list, tuple)):
            d = d[i] if i < len(d) else None
        return np.dtype(d if d is not None else np.uint8)

    def _trampoline(self, bufs, sizes, nbufs, args, args_len):
        # Runs on a scheduler worker with the GIL taken by ctypes; never lets an exception
        # escape into C (ctypes would print it and return 0, hiding the failure).
        try:
            views = []
            for i in range(nbufs):
                n, addr = sizes[i], bufs[i]
                dt = self._dtype(i)
                if not n or not addr:
                    views.append(np.empty(0, dt))
                    continue
                raw = (ctypes.c_uint8 * n).from_address(addr)
                views.append(np.frombuffer(raw, dtype=np.uint8)[: n - n % dt.itemsize]
                             .view(dt))
            a = ctypes.string_at(args, args_len) if args_len else b""
            r = self._fn(views, a)
            return 0 if r is None else int(r)
        except BaseException as e:  # noqa: B902 - reported through Graph.run
            with self._err_lock:
                self._errors.append(e)
            return e.status if isinstance(e, DeepseekError) and e.status > 0 else \
                _DS_ERR_INTERNAL

    def _take_errors(self):
        with self._err_lock:
            errs, self._errors = self._errors, []
        return errs

    def record(self, device, size, seconds):
        """Adds one measured run time (ds_kernel_model_record)."""
        self.ctx.check(lib.ds_kernel_model_record(self.handle, _index(device), int(size),
                                                  float(seconds)))

    def predict(self, device, size):
        """Prediction(seconds, samples) at ``size`` on ``device``, or None when nothing was
        measured on that device (ds_kernel_model_predict)."""
        s, n = ctypes.c_double(), ctypes.c_uint64()
        st = lib.ds_kernel_model_predict(self.handle, _index(device), int(size),
                                         ctypes.byref(s), ctypes.byref(n))
        if st == _DS_ERR_NOT_FOUND:
            return None
        self.ctx.check(st)
        return Prediction(s.value, n.value)

    def save_model(self):
        """Writes the cost model to the model cache now (no-op without one)."""
        self.ctx.check(lib.ds_kernel_model_save(self.handle))

    def close(self):
        """Closes the graphs using this kernel, then destroys it (saving its model)."""
        for g in list(self._graphs):
            g.close()
        super().close()


class Graph(Child):
    """A task graph (ds_graph): ``Graph(ctx)``. Used by one thread at a time."""

    _destroy = lib.ds_graph_destroy

    def __init__(self, ctx):
        h = ctypes.c_void_p()
        ctx.check(lib.ds_graph_create(ctypes.byref(h), ctx.handle))
        self._kernels = []
        self._buffers = []
        self._plans = weakref.WeakSet()
        super().__init__(ctx, h)

    def add(self, kernel, accesses, args=None, name=None, size=0, global_size=None,
            device=-1):
        """Appends a node running ``kernel`` on ``accesses`` — a list of (Buffer, mode) with
        mode "r", "w" or "rw" — and returns its index. ``args``: by-value arguments (bytes,
        a NumPy array/scalar or a ctypes object; <= 256 bytes), ``size``: the cost model's
        input size (0: the accessed bytes), ``global_size``: OpenCL work size (up to 3
        ints), ``device``: force a device (-1: the plan decides)."""
        if not isinstance(kernel, Kernel):
            raise TypeError("kernel must be a ds.Kernel")
        accesses = list(accesses)
        if len(accesses) > _ACCESS_MAX:
            raise ValueError("a node has at most %d accesses" % _ACCESS_MAX)
        acc = (_lib.GraphAccess * max(len(accesses), 1))()
        for i, (buf, mode) in enumerate(accesses):
            if not isinstance(buf, Buffer):
                raise TypeError("access %d: expected a ds.Buffer" % i)
            acc[i].buf, acc[i].mode = buf.handle.value, _mode(mode)
        a = _args_bytes(args)
        if len(a) > _ARGS_MAX:
            raise ValueError("args are at most %d bytes, not %d" % (_ARGS_MAX, len(a)))
        abuf = ctypes.create_string_buffer(a, max(len(a), 1))
        gs = list(global_size or ())
        if len(gs) > 3:
            raise ValueError("global_size has at most 3 dimensions")
        o = _lib.NodeOptions()
        o.struct_size = ctypes.sizeof(o)
        o.name = name.encode() if name else None
        o.args = ctypes.cast(abuf, ctypes.c_void_p) if a else None
        o.args_len = len(a)
        o.size = int(size)
        for d, v in enumerate(gs):
            o.global_[d] = int(v)
        o.device = int(device) if isinstance(device, int) else _index(device)
        out = ctypes.c_int32()
        self.ctx.check(lib.ds_graph_add(ctypes.byref(out), self.handle, kernel.handle, acc,
                                        len(accesses), ctypes.byref(o)))
        self._kernels.append(kernel)
        kernel._graphs.add(self)
        self._buffers.extend(b for b, _ in accesses)
        return out.value

    def add_dep(self, before, after):
        """Node ``after`` runs after node ``before``. A cycle is reported by plan()."""
        self.ctx.check(lib.ds_graph_add_dep(self.handle, int(before), int(after)))

    def size(self):
        """(nodes, edges): edges are the dependency edges after removing duplicates."""
        n, e = ctypes.c_uint32(), ctypes.c_uint32()
        self.ctx.check(lib.ds_graph_size(self.handle, ctypes.byref(n), ctypes.byref(e)))
        return n.value, e.value

    def __len__(self):
        return self.size()[0]

    def plan(self, policy=None, device=None, seed=1, placement=None, calibrate=True):
        """Places every node (ds_graph_plan) and returns a Plan. ``policy``: "heft"
        (default), "device" (all on ``device``; the default when only ``device`` is given),
        "random" (seeded by ``seed``), "explicit" (``placement``: one device per node).
        Raises InvalidArgError naming the node on a cycle, UnsupportedError for a node no
        present device can run, StateError for an empty graph."""
        if policy is None:
            policy = DEVICE if device is not None else (EXPLICIT if placement is not None
                                                        else HEFT)
        try:
            pol = _POLICIES[policy.lower() if isinstance(policy, str) else policy]
        except KeyError:
            raise ValueError("policy is one of 'heft', 'device', 'random', 'explicit'") \
                from None
        o = _lib.PlanOptions()
        o.struct_size = ctypes.sizeof(o)
        o.policy = pol
        o.device = _index(device) if device is not None else 0
        o.seed = int(seed)
        pl = None
        if placement is not None:
            devs = [_index(d) for d in placement]
            pl = (ctypes.c_int32 * max(len(devs), 1))(*devs)
            if len(devs) != len(self):
                raise ValueError("placement needs one device per node (%d), got %d"
                                 % (len(self), len(devs)))
            o.placement = pl
        o.calibrate = 1 if calibrate else 0
        h = ctypes.c_void_p()
        self.ctx.check(lib.ds_graph_plan(ctypes.byref(h), self.handle, ctypes.byref(o)))
        p = Plan(self, h)
        self._plans.add(p)
        return p

    def run(self, plan=None):
        """Runs ``plan`` (default: a fresh HEFT plan, closed afterwards) and returns
        RunInfo. The GIL is released while the graph runs. A failed node raises its status's
        exception (message naming the node and device), chained from the Python kernel's
        exception when that was the cause."""
        for b in self._buffers:
            if b._h is None or not b._h.value:
                raise DeepseekError("a buffer of this graph is closed")
        own = plan is None
        if own:
            plan = self.plan()
        try:
            if plan.graph is not self:
                raise ValueError("the plan belongs to another graph")
            info = _lib.GraphRunInfo()
            info.struct_size = ctypes.sizeof(info)
            st = lib.ds_graph_run(self.handle, plan.handle, ctypes.byref(info))
            errs = []
            for k in {id(k): k for k in self._kernels}.values():
                errs.extend(k._take_errors())
            if st:
                detail = lib.ds_context_last_error(self.ctx.handle) or b""
                err = error_for(st, detail.decode(errors="replace"))
                raise err from (errs[0] if errs else None)
            return RunInfo(info.makespan_s, info.bytes_moved)
        finally:
            if own:
                plan.close()

    def close(self):
        """Closes this graph's plans, then destroys it. Harmless twice."""
        for p in list(self._plans):
            p.close()
        for k in self._kernels:
            k._graphs.discard(self)
        self._kernels, self._buffers = [], []
        super().close()


class Plan(Child):
    """A placement of a graph's nodes (ds_plan), from Graph.plan(). Valid while the graph
    is not changed; ``devices`` lists the device of every node."""

    _destroy = lib.ds_plan_destroy

    def __init__(self, graph, handle):
        self.graph = graph
        super().__init__(graph.ctx, handle)

    def device(self, node):
        """Device index of ``node``."""
        out = ctypes.c_int32()
        self.ctx.check(lib.ds_plan_device(self.handle, int(node), ctypes.byref(out)))
        return out.value

    @property
    def devices(self):
        return [self.device(i) for i in range(self.info().nodes)]

    def info(self):
        """PlanInfo(nodes, makespan_s, bytes_moved, calibrating)."""
        i = _lib.PlanInfo()
        i.struct_size = ctypes.sizeof(i)
        self.ctx.check(lib.ds_plan_get_info(self.handle, ctypes.byref(i)))
        return PlanInfo(i.nodes, i.makespan_s, i.bytes_moved, i.calibrating)

    def run(self):
        """graph.run(self)."""
        return self.graph.run(self)
