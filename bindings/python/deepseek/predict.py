"""The load predictor (ds_predictor): create or load, train, evaluate on windows, observe and
predict online, save. Arrays are float32 NumPy arrays of raw (unnormalised) features."""

import ctypes

import numpy as np

from . import _lib
from ._lib import lib
from .context import Child

_FP = ctypes.POINTER(ctypes.c_float)


def _series(arrays, keep):
    arr = (_lib.PredictorSeries * max(len(arrays), 1))()
    for i, a in enumerate(arrays):
        a = np.ascontiguousarray(a, dtype=np.float32)
        keep.append(a)
        arr[i].data, arr[i].nsteps, arr[i].valid = a.ctypes.data_as(_FP), a.shape[0], None
    return arr


class Predictor(Child):
    """``Predictor(ctx, nfeatures=4, window=32, hidden=32, layers=1, horizons=10, target=0,
    overload_threshold=0.8, seed=1)``, or ``Predictor.load(ctx, path)`` /
    ``Predictor.from_bytes(ctx, data)``. One thread at a time (see predict.h)."""

    _destroy = lib.ds_predictor_destroy

    def __init__(self, ctx, nfeatures=4, window=32, hidden=32, layers=1, horizons=10, target=0,
                 overload_threshold=0.8, seed=1, _handle=None):
        if _handle is None:
            o = _lib.PredictorOptions(ctypes.sizeof(_lib.PredictorOptions), nfeatures, window,
                                      hidden, layers, horizons, target, overload_threshold, seed)
            _handle = ctypes.c_void_p()
            ctx.check(lib.ds_predictor_create(ctypes.byref(_handle), ctx.handle,
                                              ctypes.byref(o)))
        super().__init__(ctx, _handle)

    @classmethod
    def load(cls, ctx, path):
        h = ctypes.c_void_p()
        ctx.check(lib.ds_predictor_load(ctypes.byref(h), ctx.handle, path.encode()))
        return cls(ctx, _handle=h)

    @classmethod
    def from_bytes(cls, ctx, data):
        h = ctypes.c_void_p()
        buf = ctypes.create_string_buffer(bytes(data), len(data))
        ctx.check(lib.ds_predictor_load_buffer(ctypes.byref(h), ctx.handle, buf, len(data)))
        return cls(ctx, _handle=h)

    @property
    def options(self):
        o = _lib.PredictorOptions()
        o.struct_size = ctypes.sizeof(o)
        self.ctx.check(lib.ds_predictor_get_options(ctypes.byref(o), self.handle))
        return {f: getattr(o, f) for f, _ in _lib.PredictorOptions._fields_
                if f != "struct_size"}

    def train(self, train, val=(), **opts):
        """Trains on lists of [nsteps, nfeatures] arrays; keyword options as
        ds_predictor_train_options (max_epochs, lr, ...). Returns the report as a dict."""
        o = _lib.PredictorTrainOptions(ctypes.sizeof(_lib.PredictorTrainOptions), 20, 3, 32,
                                       4096, 2048, 3e-3, 1e-4, 1.0, 0.5, 1, 1, 0)
        for k, v in opts.items():
            if not hasattr(o, k) or k == "struct_size":
                raise TypeError("unknown training option %r" % k)
            setattr(o, k, v)
        keep = []
        tr, va = _series(train, keep), _series(val, keep)
        rep = _lib.PredictorTrainReport()
        rep.struct_size = ctypes.sizeof(rep)
        self.ctx.check(lib.ds_predictor_train(self.handle, tr, len(train), va, len(val),
                                              ctypes.byref(o), ctypes.byref(rep)))
        return {f: getattr(rep, f) for f, _ in _lib.PredictorTrainReport._fields_
                if f not in ("struct_size", "reserved")}

    def _outputs(self):
        k = self.options["horizons"]
        return np.empty(k, np.float32), np.empty(k, np.float32)

    def forward(self, window):
        """(values, probabilities) at horizons 1..K for a [window, nfeatures] array."""
        o = self.options
        w = np.ascontiguousarray(window, dtype=np.float32)
        if w.shape != (o["window"], o["nfeatures"]):
            raise ValueError("window must be %dx%d, got %s" %
                             (o["window"], o["nfeatures"], w.shape))
        v, p = self._outputs()
        self.ctx.check(lib.ds_predictor_forward(self.handle, w.ctypes.data_as(_FP),
                                                v.ctypes.data_as(_FP), p.ctypes.data_as(_FP)))
        return v, p

    def evaluate(self, series):
        """Slides the window over a [nsteps, nfeatures] series; returns (values, probs) of
        shape [windows, K] for windows ending at rows window-1 .. nsteps-1."""
        s = np.ascontiguousarray(series, dtype=np.float32)
        w = self.options["window"]
        outs = [self.forward(s[i - w + 1:i + 1]) for i in range(w - 1, s.shape[0])]
        return np.array([v for v, _ in outs]), np.array([p for _, p in outs])

    def observe(self, sample):
        s = np.ascontiguousarray(sample, dtype=np.float32)
        self.ctx.check(lib.ds_predictor_observe(self.handle, s.ctypes.data_as(_FP)))

    def predict(self):
        v, p = self._outputs()
        self.ctx.check(lib.ds_predictor_predict(self.handle, v.ctypes.data_as(_FP),
                                                p.ctypes.data_as(_FP)))
        return v, p

    def to_bytes(self):
        n = ctypes.c_size_t()
        self.ctx.check(lib.ds_predictor_save_buffer(self.handle, None, 0, ctypes.byref(n)))
        buf = ctypes.create_string_buffer(n.value)
        self.ctx.check(lib.ds_predictor_save_buffer(self.handle, buf, n.value, ctypes.byref(n)))
        return buf.raw[:n.value]

    def save(self, path):
        self.ctx.check(lib.ds_predictor_save(self.handle, path.encode()))

    def online_wait(self):
        """(fine-tunes run, fine-tunes accepted)."""
        runs, acc = ctypes.c_uint64(), ctypes.c_uint64()
        lib.ds_predictor_online_wait(self.handle, ctypes.byref(runs), ctypes.byref(acc))
        return runs.value, acc.value

    def attach_to_scheduler(self):
        """Makes this predictor the scheduler's load predictor (detached again on close)."""
        self.ctx.check(lib.ds_sched_set_predictor(self.ctx.handle, self.handle))
        self._attached = True

    def close(self):
        if getattr(self, "_attached", False) and self._h is not None and self._h.value:
            lib.ds_sched_set_predictor(self.ctx.handle, None)
            self._attached = False
        super().close()
