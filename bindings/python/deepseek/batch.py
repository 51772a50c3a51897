"""The dynamic batcher (ds_batcher) with a Python handler.

The handler runs on the library's scheduler workers (ctypes takes the GIL for it), so Python
handlers of one batcher run one at a time; the batching itself (queueing, gather, scatter,
timers) stays in C. Submitting threads release the GIL while they wait.
"""

import ctypes
import threading

import numpy as np

from . import _lib
from ._lib import lib
from .context import Child
from .errors import DeepseekError, error_for
from .tensor import Tensor, dtype_number, numpy_dtype

PRIO_URGENT, PRIO_NORMAL = 0, 1
_PRIOS = {"urgent": PRIO_URGENT, "normal": PRIO_NORMAL}
_INTERNAL = 17  # DS_ERR_INTERNAL: what a handler that raised a non-Deepseek exception returns


def _int_array(ctype, values):
    if not values:
        return None, 0
    return (ctype * len(values))(*values), len(values)


class Request:
    """One submitted request. ``result(timeout=None)`` waits and returns the output array;
    ``wait`` returns the final status number without raising; ``cancel()`` as the C call.
    The input and output arrays stay referenced until the request is done."""

    def __init__(self, batcher, x, out):
        self._batcher = batcher
        self.input = x
        self.output = out
        self._h = ctypes.c_void_p()
        self.status = None  # set once done (by the completion callback)
        self.error_detail = ""

    def wait(self, timeout=None):
        """Final status (0 = success), or None if not done within ``timeout`` seconds."""
        if self.status is not None:
            return self.status
        us = -1 if timeout is None else int(timeout * 1e6)
        st = lib.ds_batch_request_wait(self._h, us)
        if st == 13:  # DS_ERR_BUSY: not done in time
            return None
        return st

    def result(self, timeout=None):
        """The output array; raises the request's error (DsTimeoutError if not done)."""
        st = self.wait(timeout)
        if st is None:
            raise error_for(11, "request not done within %s s" % timeout)
        if st != 0:
            exc = error_for(st, self.error_detail or self._batcher.last_handler_error)
            raise exc
        return self.output

    def cancel(self):
        """True if it was still queued and is now cancelled; False if it runs or ran."""
        st = lib.ds_batch_request_cancel(self._h)
        if st in (13, 15):  # BUSY (its batch runs), STATE (already done)
            return False
        self._batcher.ctx.check(st)
        return True

    def release(self):
        h, self._h = self._h, None
        if h is not None and h.value:
            lib.ds_batch_request_release(h)

    def __del__(self):
        try:
            self.release()
        except Exception:
            pass


class Batcher(Child):
    """A ds_batcher whose batches run ``handler``.

    ``handler(inputs) -> outputs``: ``inputs`` is a NumPy array [rows, *input_shape] (rows
    padded with zeros past the real requests; varying dims padded to the longest), and the
    return value is copied into the batch output [rows, *output_shape]. With
    ``inplace=True`` the handler is called as ``handler(inputs, outputs)`` and fills
    ``outputs`` itself. Both arrays are valid only during the call. An exception in the
    handler fails the batch's requests (DeepseekError subclasses keep their status, others
    give InternalError); its text is in ``last_handler_error``.

    Shapes: ``input_shape`` per request without the batch dim, -1 for a varying dim;
    ``output_shape`` likewise, -1 meaning "the input's dim here". Other options follow
    ds_batcher_options: ``max_batch_size`` 0, ``max_queue_delay_us`` -1 and ``max_inflight`` 0
    (the defaults) take the context's batch_max_size (32), batch_max_delay_us (0) and
    batch_max_inflight (0: the workers) tunables. Thread-safe except close().
    """

    _destroy = lib.ds_batcher_destroy

    def __init__(self, ctx, handler, input_shape, output_shape, dtype="f32",
                 output_dtype="f32", max_batch_size=0, max_queue_delay_us=-1, max_inflight=0,
                 max_queue_size=0, block_when_full=False, name=None, max_shape=None,
                 preferred_batch_sizes=None, allowed_batch_sizes=None, bucket_bounds=None,
                 inplace=False):
        self._handler, self._inplace = handler, inplace
        self.last_handler_error = ""
        self._pending = {}
        self._lock = threading.Lock()
        self._next = 1
        self.input_shape, self.output_shape = tuple(input_shape), tuple(output_shape)
        self.dtype, self.output_dtype = dtype_number(dtype), dtype_number(output_dtype)
        o = _lib.BatcherOptions()
        o.struct_size = ctypes.sizeof(o)
        self._handler_fn = _lib.BATCH_HANDLER_FN(self._run_batch)
        self._done_fn = _lib.BATCH_DONE_FN(self._on_done)
        o.handler = self._handler_fn
        o.name = name.encode() if name else None
        o.max_batch_size, o.max_queue_delay_us = max_batch_size, max_queue_delay_us
        o.max_inflight, o.max_queue_size = max_inflight, max_queue_size
        o.full_policy = 1 if block_when_full else 0
        o.dtype, o.output_dtype = self.dtype, self.output_dtype
        o.ndim, o.output_ndim = len(self.input_shape), len(self.output_shape)
        for i, d in enumerate(self.input_shape):
            o.shape[i] = d
        for i, d in enumerate(max_shape or ()):
            o.max_shape[i] = d
        for i, d in enumerate(self.output_shape):
            o.output_shape[i] = d
        # The lists are copied by ds_batcher_create; keep them alive until then.
        pref, o.npreferred = _int_array(ctypes.c_int32, preferred_batch_sizes)
        allw, o.nallowed = _int_array(ctypes.c_int32, allowed_batch_sizes)
        bnds, o.nbuckets = _int_array(ctypes.c_int64, bucket_bounds)
        o.preferred_batch_sizes, o.allowed_batch_sizes, o.bucket_bounds = pref, allw, bnds
        h = ctypes.c_void_p()
        ctx.check(lib.ds_batcher_create(ctypes.byref(h), ctx.handle, ctypes.byref(o)))
        super().__init__(ctx, h)

    # -- the C callbacks
    def _run_batch(self, _user, batch_ptr):
        b = batch_ptr.contents
        try:
            x = Tensor(b.input.contents, None).numpy()
            out = Tensor(b.output.contents, None).numpy()
            if self._inplace:
                self._handler(x, out)
            else:
                y = self._handler(x)
                out[...] = np.asarray(y).reshape(out.shape)
            return 0
        except DeepseekError as e:
            self.last_handler_error = "handler raised %r" % (e,)
            return e.status if e.status > 0 else _INTERNAL
        except BaseException as e:  # noqa: B902 - nothing may propagate into C
            self.last_handler_error = "handler raised %r" % (e,)
            return _INTERNAL

    def _on_done(self, user, _req, status):
        with self._lock:
            r = self._pending.pop(user or 0, None)
        if r is not None:
            r.status = status

    # -- requests
    def submit(self, x, prio="normal", timeout_us=0):
        """Submits one request (array of the batcher's dtype and input shape); returns a
        Request. Raises ShapeError, DtypeError, NoSpaceError (queue full), ShutdownError..."""
        npdt = numpy_dtype(self.dtype)
        x = np.ascontiguousarray(x, dtype=npdt)
        oshape = tuple(x.shape[i] if d == -1 else d for i, d in enumerate(self.output_shape))
        out = np.zeros(oshape, dtype=numpy_dtype(self.output_dtype))
        req = Request(self, x, out)
        self.ctx._track(req)
        tin = Tensor.from_numpy(x, self.dtype)
        tout = Tensor.from_numpy(out, self.output_dtype)
        with self._lock:
            token = self._next
            self._next += 1
            self._pending[token] = req
        opts = _lib.BatchSubmitOptions(ctypes.sizeof(_lib.BatchSubmitOptions),
                                       _PRIOS.get(prio, prio), timeout_us, self._done_fn,
                                       token)
        st = lib.ds_batcher_submit(ctypes.byref(req._h), self.handle, ctypes.byref(tin.c),
                                   ctypes.byref(tout.c), ctypes.byref(opts))
        if st != 0:
            with self._lock:
                self._pending.pop(token, None)
            self.ctx.check(st)
        return req

    def __call__(self, x, prio="normal", timeout=None):
        """Submits ``x`` and returns its output (blocking)."""
        req = self.submit(x, prio)
        try:
            return req.result(timeout)
        finally:
            req.release()

    def shutdown(self, drain=True):
        self.ctx.check(lib.ds_batcher_shutdown(self.handle, 1 if drain else 0))

    def stats(self):
        s = _lib.BatcherStats()
        s.struct_size = ctypes.sizeof(s)
        self.ctx.check(lib.ds_batcher_stats_get(self.handle, ctypes.byref(s)))
        return {f: getattr(s, f) for f, _ in _lib.BatcherStats._fields_ if f != "struct_size"}

    def histogram(self, n=None):
        """counts[i] = batches of i requests (the last bucket takes larger ones)."""
        n = n or 64
        arr = (ctypes.c_uint64 * n)()
        self.ctx.check(lib.ds_batcher_histogram(self.handle, arr, n))
        return list(arr)
