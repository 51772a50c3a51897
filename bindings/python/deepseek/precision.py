"""Precision: conversions and GEMM on NumPy arrays or Tensors (zero-copy with torch through
DLPack), the fp32 training kernels, the DynamicPrecision policy, the loss scaler and the
optimisers. bf16 arrays are NumPy uint16 arrays holding the bits."""

import ctypes

import numpy as np

from . import _lib
from ._lib import lib
from .context import Child
from .tensor import DTYPE_NAMES, Tensor, dtype_number, numpy_dtype, tensor

TRANS_A, TRANS_B = 0x1, 0x2
ACT = {"none": 0, "relu": 1, "gelu": 2, "silu": 3}
_FP = ctypes.POINTER(ctypes.c_float)


def _f32(a, name, writable=False):
    if not (isinstance(a, np.ndarray) and a.dtype == np.float32 and a.flags.c_contiguous):
        raise TypeError("%s must be a C-contiguous float32 NumPy array" % name)
    if writable and not a.flags.writeable:
        raise ValueError("%s must be writable" % name)
    return a.ctypes.data_as(_FP)


def _opt_f32(a, name):
    return None if a is None else _f32(a, name)


def isa(ctx):
    """The CPU kernel level in use ("avx512", "avx2", "scalar")."""
    return lib.ds_precision_isa_name(lib.ds_precision_isa_in_use(ctx.handle)).decode()


def convert(ctx, src, dtype, src_dtype=None):
    """A new array of ``src``'s elements converted to ``dtype`` ("f32", "f16", "bf16"),
    rounding to nearest even. ``src_dtype`` says what ``src`` holds when it is a uint16
    array of bf16 bits ("bf16")."""
    src = np.ascontiguousarray(src)
    sd = dtype_number(src.dtype if src_dtype is None else src_dtype)
    dd = dtype_number(dtype)
    out = np.empty(src.shape, dtype=numpy_dtype(dd))
    ctx.check(lib.ds_precision_convert(ctx.handle, out.ctypes.data, dd, src.ctypes.data, sd,
                                       src.size))
    return out


def convert_tensor(ctx, dst, src):
    """Converts Tensor-like ``src`` into Tensor-like ``dst`` in place (same element count;
    dtypes from the tensors, e.g. torch bf16 through DLPack)."""
    d, s = tensor(dst), tensor(src)
    ctx.check(lib.ds_precision_convert_tensor(ctx.handle, ctypes.byref(d.c), ctypes.byref(s.c)))
    return dst


def gemm(ctx, a, b, c=None, trans_a=False, trans_b=False, alpha=1.0, beta=0.0,
         out_dtype="f32"):
    """C = alpha op(A) op(B) + beta C with fp32 accumulation (ds_gemm).

    ``a``, ``b`` and ``c`` are NumPy arrays, Tensors, or DLPack producers such as torch
    tensors (used in place, no copy). Without ``c`` a new NumPy array of ``out_dtype`` is
    made and returned (beta is then 0); with ``c`` the result is written into it and ``c``
    is returned."""
    ta, tb = tensor(a), tensor(b)
    flags = (TRANS_A if trans_a else 0) | (TRANS_B if trans_b else 0)
    if c is None:
        sa, sb = ta.shape, tb.shape
        m = sa[-1] if trans_a else sa[-2]
        n = sb[-2] if trans_b else sb[-1]
        batch = sa[:-2] if len(sa) == 3 else sb[:-2]
        c = np.zeros(tuple(batch) + (m, n), dtype=numpy_dtype(out_dtype))
        tc = Tensor.from_numpy(c, out_dtype)
        beta = 0.0
    else:
        tc = tensor(c)
    ctx.check(lib.ds_gemm(ctx.handle, ctypes.byref(tc.c), ctypes.byref(ta.c),
                          ctypes.byref(tb.c), flags, alpha, beta))
    return c


# ---------------------------------------------------------------- fp32 kernels

def bias_act(ctx, x, bias=None, act="relu"):
    rows, cols = x.shape
    y = np.empty_like(x)
    ctx.check(lib.ds_bias_act_forward(ctx.handle, _f32(y, "y"), _f32(x, "x"),
                                      _opt_f32(bias, "bias"), rows, cols, ACT[act]))
    return y


def bias_act_backward(ctx, dy, x, bias=None, act="relu"):
    """(dx, dbias) of bias_act."""
    rows, cols = x.shape
    dx = np.empty_like(x)
    db = np.empty(cols, dtype=np.float32)
    ctx.check(lib.ds_bias_act_backward(ctx.handle, _f32(dx, "dx"), _f32(db, "dbias"),
                                       _f32(dy, "dy"), _f32(x, "x"), _opt_f32(bias, "bias"),
                                       rows, cols, ACT[act]))
    return dx, db


def softmax(ctx, x, log=False):
    rows, cols = x.shape
    y = np.empty_like(x)
    ctx.check(lib.ds_softmax_forward(ctx.handle, _f32(y, "y"), _f32(x, "x"), rows, cols,
                                     1 if log else 0))
    return y


def softmax_backward(ctx, dy, y, log=False):
    rows, cols = y.shape
    dx = np.empty_like(y)
    ctx.check(lib.ds_softmax_backward(ctx.handle, _f32(dx, "dx"), _f32(dy, "dy"), _f32(y, "y"),
                                      rows, cols, 1 if log else 0))
    return dx


def layernorm(ctx, x, gamma=None, beta=None, eps=1e-5):
    """(y, mean, rstd)."""
    rows, cols = x.shape
    y = np.empty_like(x)
    mean, rstd = np.empty(rows, np.float32), np.empty(rows, np.float32)
    ctx.check(lib.ds_layernorm_forward(ctx.handle, _f32(y, "y"), _f32(mean, "mean"),
                                       _f32(rstd, "rstd"), _f32(x, "x"),
                                       _opt_f32(gamma, "gamma"), _opt_f32(beta, "beta"),
                                       rows, cols, eps))
    return y, mean, rstd


def layernorm_backward(ctx, dy, x, mean, rstd, gamma=None):
    """(dx, dgamma, dbeta)."""
    rows, cols = x.shape
    dx = np.empty_like(x)
    dg, db = np.empty(cols, np.float32), np.empty(cols, np.float32)
    ctx.check(lib.ds_layernorm_backward(ctx.handle, _f32(dx, "dx"), _f32(dg, "dgamma"),
                                        _f32(db, "dbeta"), _f32(dy, "dy"), _f32(x, "x"),
                                        _f32(mean, "mean"), _f32(rstd, "rstd"),
                                        _opt_f32(gamma, "gamma"), rows, cols))
    return dx, dg, db


def rmsnorm(ctx, x, gamma=None, eps=1e-6):
    """(y, rstd)."""
    rows, cols = x.shape
    y, rstd = np.empty_like(x), np.empty(rows, np.float32)
    ctx.check(lib.ds_rmsnorm_forward(ctx.handle, _f32(y, "y"), _f32(rstd, "rstd"),
                                     _f32(x, "x"), _opt_f32(gamma, "gamma"), rows, cols, eps))
    return y, rstd


def rmsnorm_backward(ctx, dy, x, rstd, gamma=None):
    """(dx, dgamma)."""
    rows, cols = x.shape
    dx, dg = np.empty_like(x), np.empty(cols, np.float32)
    ctx.check(lib.ds_rmsnorm_backward(ctx.handle, _f32(dx, "dx"), _f32(dg, "dgamma"),
                                      _f32(dy, "dy"), _f32(x, "x"), _f32(rstd, "rstd"),
                                      _opt_f32(gamma, "gamma"), rows, cols))
    return dx, dg


def cross_entropy(ctx, logits, labels, grad=True):
    """(mean loss, dlogits or None)."""
    rows, cols = logits.shape
    labels = np.ascontiguousarray(labels, dtype=np.int32)
    loss = ctypes.c_float()
    d = np.empty_like(logits) if grad else None
    ctx.check(lib.ds_cross_entropy(ctx.handle, ctypes.byref(loss), _opt_f32(d, "dlogits"),
                                   _f32(logits, "logits"),
                                   labels.ctypes.data_as(ctypes.POINTER(ctypes.c_int32)),
                                   rows, cols))
    return loss.value, d


def embedding(ctx, table, ids):
    vocab, dim = table.shape
    ids = np.ascontiguousarray(ids, dtype=np.int32)
    y = np.empty((ids.size, dim), np.float32)
    ctx.check(lib.ds_embedding_forward(ctx.handle, _f32(y, "y"), _f32(table, "table"),
                                       ids.ctypes.data_as(ctypes.POINTER(ctypes.c_int32)),
                                       ids.size, vocab, dim))
    return y


def embedding_backward(ctx, dtable, dy, ids):
    """Accumulates dy rows into dtable (in place)."""
    vocab, dim = dtable.shape
    ids = np.ascontiguousarray(ids, dtype=np.int32)
    ctx.check(lib.ds_embedding_backward(ctx.handle, _f32(dtable, "dtable", True), _f32(dy, "dy"),
                                        ids.ctypes.data_as(ctypes.POINTER(ctypes.c_int32)),
                                        ids.size, vocab, dim))
    return dtable


def elementwise(ctx, op, a, b=None, s=1.0):
    """op "add", "mul" or "scale" on float32 arrays; returns a new array."""
    y = np.empty_like(a)
    code = {"add": 0, "mul": 1, "scale": 2}[op]
    ctx.check(lib.ds_elementwise(ctx.handle, code, _f32(y, "y"), _f32(a, "a"),
                                 _opt_f32(b, "b"), s, a.size))
    return y


def reduce(ctx, x, op="sum", dtype=None):
    """"sum", "amax" or "all_finite" of an f32/f16 array (or bf16 bits with dtype="bf16")."""
    x = np.ascontiguousarray(x)
    out = ctypes.c_double()
    code = {"sum": 0, "amax": 1, "all_finite": 2}[op]
    ctx.check(lib.ds_reduce(ctx.handle, ctypes.byref(out), code, x.ctypes.data,
                            dtype_number(x.dtype if dtype is None else dtype), x.size))
    return out.value


# ---------------------------------------------------------------- policy, scaler, optimiser

# ------------------------------------------------ kernels on tensors (16-bit, CPU or CUDA)

def _out_like(t, dtype):
    """A new NumPy array shaped as Tensor ``t``, of ``dtype`` (default ``t``'s), and its Tensor."""
    code = t.c.dtype if dtype is None else dtype_number(dtype)
    arr = np.empty(tuple(t.shape), dtype=numpy_dtype(code))
    return arr, Tensor.from_numpy(arr, DTYPE_NAMES[code])


def softmax_tensor(ctx, x, log=False, out_dtype=None):
    """Row-wise (log-)softmax of Tensor-like ``x`` (f32, f16 or bf16 bits as uint16 with a
    Tensor made by ``Tensor.from_numpy(a, "bf16")``), computed in fp32 and rounded once to
    ``out_dtype`` (default x's) (ds_softmax_forward_tensor). Returns a NumPy array."""
    tx = tensor(x)
    y, ty = _out_like(tx, out_dtype)
    ctx.check(lib.ds_softmax_forward_tensor(ctx.handle, ctypes.byref(ty.c), ctypes.byref(tx.c),
                                            1 if log else 0))
    return y


def cross_entropy_tensor(ctx, logits, labels, grad_dtype=None):
    """(loss, dlogits) of Tensor-like ``logits`` (f32/f16/bf16) against int32 ``labels``;
    dlogits in ``grad_dtype`` (default the logits' dtype) (ds_cross_entropy_tensor)."""
    tl = tensor(logits)
    tlab = tensor(np.ascontiguousarray(labels, dtype=np.int32))
    d, td = _out_like(tl, grad_dtype)
    loss = ctypes.c_float()
    ctx.check(lib.ds_cross_entropy_tensor(ctx.handle, ctypes.byref(loss), ctypes.byref(td.c),
                                          ctypes.byref(tl.c), ctypes.byref(tlab.c)))
    return loss.value, d


class DynamicPrecision(Child):
    """The DynamicPrecision policy: ``DynamicPrecision(ctx, fp16_layers=['attention','ffn'],
    bf16_layers=['embedding'], fallback_threshold=0.95)``. Names are fnmatch patterns;
    ``rules`` (a list of (pattern, dtype)) may be given instead. Thread-safe."""

    _destroy = lib.ds_precision_policy_destroy

    def __init__(self, ctx, fp16_layers=(), bf16_layers=(), fallback_threshold=0.99,
                 check_interval=100, demote_after=10, native_bf16=-1, bf16_fallback="f32",
                 rules=None):
        rules = list(rules or []) + [(p, "f16") for p in fp16_layers] + \
            [(p, "bf16") for p in bf16_layers]
        arr = (_lib.PrecisionRule * max(len(rules), 1))()
        self._patterns = [p.encode() for p, _ in rules]
        for i, (p, d) in enumerate(rules):
            arr[i].pattern, arr[i].dtype = self._patterns[i], dtype_number(d)
        o = _lib.PrecisionPolicyOptions(ctypes.sizeof(_lib.PrecisionPolicyOptions), arr,
                                        len(rules), fallback_threshold, check_interval,
                                        demote_after, native_bf16, dtype_number(bf16_fallback),
                                        _lib.Device(0, 0))
        h = ctypes.c_void_p()
        ctx.check(lib.ds_precision_policy_create(ctypes.byref(h), ctx.handle, ctypes.byref(o)))
        super().__init__(ctx, h)

    def dtype(self, layer):
        out = ctypes.c_int()
        self.ctx.check(lib.ds_precision_policy_dtype(self.handle, layer.encode(),
                                                     ctypes.byref(out)))
        return DTYPE_NAMES[out.value]

    def due(self, step):
        return bool(lib.ds_precision_policy_due(self.handle, step))

    def observe(self, layer, step, low, shadow, low_dtype=None):
        """Reports a check; returns (new dtype name, score)."""
        low = np.ascontiguousarray(low)
        shadow = np.ascontiguousarray(shadow, dtype=np.float32)
        nd, sc = ctypes.c_int(), ctypes.c_float()
        self.ctx.check(lib.ds_precision_policy_observe(
            self.handle, layer.encode(), step, low.ctypes.data,
            dtype_number(low.dtype if low_dtype is None else low_dtype),
            shadow.ctypes.data_as(_FP), shadow.size, ctypes.byref(nd), ctypes.byref(sc)))
        return DTYPE_NAMES[nd.value], sc.value

    def report(self, layer, step, score):
        nd = ctypes.c_int()
        self.ctx.check(lib.ds_precision_policy_report(self.handle, layer.encode(), step, score,
                                                      ctypes.byref(nd)))
        return DTYPE_NAMES[nd.value]

    def layer(self, layer):
        i = _lib.PrecisionLayerInfo()
        self.ctx.check(lib.ds_precision_policy_layer(self.handle, layer.encode(),
                                                     ctypes.byref(i)))
        return {"rule_dtype": DTYPE_NAMES[i.rule_dtype], "base_dtype": DTYPE_NAMES[i.base_dtype],
                "dtype": DTYPE_NAMES[i.dtype], "clean_checks": i.clean_checks,
                "checks": i.checks, "switches": i.switches, "last_score": i.last_score}

    def history(self, layer, cap=64):
        arr = (_lib.PrecisionSwitch * cap)()
        n = ctypes.c_size_t()
        self.ctx.check(lib.ds_precision_policy_history(self.handle, layer.encode(), arr, cap,
                                                       ctypes.byref(n)))
        return [{"step": s.step, "from": DTYPE_NAMES[s.from_], "to": DTYPE_NAMES[s.to],
                 "reason": s.reason, "score": s.score} for s in arr[:n.value]]


def stability_score(ctx, low, shadow, low_dtype=None):
    low = np.ascontiguousarray(low)
    shadow = np.ascontiguousarray(shadow, dtype=np.float32)
    sc = ctypes.c_float()
    ctx.check(lib.ds_precision_stability_score(
        ctx.handle, ctypes.byref(sc), low.ctypes.data,
        dtype_number(low.dtype if low_dtype is None else low_dtype),
        shadow.ctypes.data_as(_FP), shadow.size))
    return sc.value


class LossScaler(Child):
    """Dynamic loss scaling with GradScaler's rules. One thread at a time."""

    _destroy = lib.ds_loss_scaler_destroy

    def __init__(self, ctx, init_scale=65536.0, growth_factor=2.0, backoff_factor=0.5,
                 growth_interval=2000, hysteresis=1, min_scale=0.0):
        o = _lib.LossScalerOptions(ctypes.sizeof(_lib.LossScalerOptions), init_scale,
                                   growth_factor, backoff_factor, growth_interval, hysteresis,
                                   min_scale)
        h = ctypes.c_void_p()
        ctx.check(lib.ds_loss_scaler_create(ctypes.byref(h), ctx.handle, ctypes.byref(o)))
        super().__init__(ctx, h)

    @property
    def scale(self):
        return lib.ds_loss_scaler_scale(self.handle)

    def unscale(self, grads, dtype=None):
        """(fp32 unscaled gradients, found_inf)."""
        grads = np.ascontiguousarray(grads)
        dst = np.empty(grads.shape, np.float32)
        found = ctypes.c_int()
        self.ctx.check(lib.ds_loss_scaler_unscale(
            self.handle, dst.ctypes.data_as(_FP), grads.ctypes.data,
            dtype_number(grads.dtype if dtype is None else dtype), grads.size,
            ctypes.byref(found)))
        return dst, bool(found.value)

    def update(self, found_inf=False):
        """Ends the step; True when the optimiser must skip it."""
        skip = ctypes.c_int()
        self.ctx.check(lib.ds_loss_scaler_update(self.handle, 1 if found_inf else 0,
                                                 ctypes.byref(skip)))
        return bool(skip.value)


class Optimizer(Child):
    """SGD (momentum) or AdamW with fp32 masters: ``Optimizer(ctx, "sgd", lr=0.01)``.
    One thread at a time."""

    _destroy = lib.ds_optimizer_destroy

    def __init__(self, ctx, kind="sgd", lr=0.01, momentum=0.9, beta1=0.9, beta2=0.999,
                 eps=1e-8, weight_decay=0.0, state_dtype="f32", split_master=False):
        o = _lib.OptimizerOptions(ctypes.sizeof(_lib.OptimizerOptions),
                                  {"sgd": 0, "adamw": 1}[kind], lr, momentum, beta1, beta2,
                                  eps, weight_decay, dtype_number(state_dtype),
                                  1 if split_master else 0)
        h = ctypes.c_void_p()
        ctx.check(lib.ds_optimizer_create(ctypes.byref(h), ctx.handle, ctypes.byref(o)))
        super().__init__(ctx, h)
        self._sizes = {}

    def add_param(self, name, init, dtype="f32"):
        init = np.ascontiguousarray(init, dtype=np.float32)
        self.ctx.check(lib.ds_optimizer_add_param(self.handle, name.encode(),
                                                  init.ctypes.data_as(_FP), init.size,
                                                  dtype_number(dtype)))
        self._sizes[name] = init.shape

    def working(self, name):
        """A NumPy view (no copy) of the working copy (bf16 as uint16 bits); valid until
        close()."""
        data, dt = ctypes.c_void_p(), ctypes.c_int()
        self.ctx.check(lib.ds_optimizer_working(self.handle, name.encode(), ctypes.byref(data),
                                                ctypes.byref(dt)))
        return self._view(data.value, dt.value, name)

    def master_copy(self, name):
        """A copy of the fp32 master (works for split masters too)."""
        out = np.empty(self._sizes[name], np.float32)
        self.ctx.check(lib.ds_optimizer_master_read(self.handle, name.encode(),
                                                    out.ctypes.data_as(_FP)))
        return out

    def master(self, name):
        """A NumPy view (no copy) of the fp32 master (not for split masters: master_copy)."""
        data = _FP()
        self.ctx.check(lib.ds_optimizer_master(self.handle, name.encode(), ctypes.byref(data)))
        return self._view(ctypes.cast(data, ctypes.c_void_p).value, 0, name)

    def _view(self, ptr, dt, name):
        # Valid until the optimiser is closed (the memory is the optimiser's).
        shape = self._sizes[name]
        nbytes = int(np.prod(shape)) * numpy_dtype(dt).itemsize
        raw = np.ctypeslib.as_array(ctypes.cast(ptr, ctypes.POINTER(ctypes.c_uint8)),
                                    shape=(nbytes,))
        return raw.view(numpy_dtype(dt)).reshape(shape)

    def step(self, name, grad, scale=1.0, dtype=None):
        """One update from grad / scale; grad float32, float16, or bf16 bits as uint16 with
        dtype="bf16"."""
        grad = np.ascontiguousarray(grad)
        if dtype is None and grad.dtype not in (np.float16, np.uint16):
            grad = np.ascontiguousarray(grad, dtype=np.float32)
        if grad.size != int(np.prod(self._sizes[name])):
            raise ValueError("gradient of %s has %d elements, expected %d" %
                             (name, grad.size, int(np.prod(self._sizes[name]))))
        if dtype is None and grad.dtype == np.float32 and scale == 1.0:
            self.ctx.check(lib.ds_optimizer_step(self.handle, name.encode(),
                                                 grad.ctypes.data_as(_FP)))
            return
        self.ctx.check(lib.ds_optimizer_step_scaled(
            self.handle, name.encode(), grad.ctypes.data,
            dtype_number(grad.dtype if dtype is None else dtype), scale))

    def step_linear(self, name, dy, x, tile_rows=0):
        """One update of the weight ``name`` ([out, in]) of y = x W^T from dW = dy^T x,
        computed and applied in row tiles (ds_optimizer_step_linear): no whole gradient is
        held. Not for loss-scaled steps. ``dy`` [B, out] and ``x`` [B, in] are arrays or
        Tensors (bf16 as Tensors)."""
        tdy, tx = tensor(dy), tensor(x)
        self.ctx.check(lib.ds_optimizer_step_linear(self.handle, name.encode(),
                                                    ctypes.byref(tdy.c), ctypes.byref(tx.c),
                                                    tile_rows))

    def memory(self):
        m = _lib.OptimizerMemory(struct_size=ctypes.sizeof(_lib.OptimizerMemory))
        self.ctx.check(lib.ds_optimizer_memory_get(self.handle, ctypes.byref(m)))
        return {f: getattr(m, f) for f, _ in _lib.OptimizerMemory._fields_ if f != "struct_size"}
