"""Tensors: ds_tensor views of NumPy arrays and DLPack tensors, and DLPack export.

A Tensor never copies: it describes memory owned by a NumPy array or by a DLPack producer
(a torch tensor), and keeps that owner alive. Export (``to_dlpack``, ``__dlpack__``) hands the
same memory to a consumer such as ``torch.utils.dlpack.from_dlpack`` — zero-copy both ways.
"""

import ctypes
import threading

import numpy as np

from . import _lib
from ._lib import lib
from .errors import DeepseekError, check

# ds_dtype numbers and names (include/deepseek/tensor.h).
DTYPES = {"f32": 0, "f16": 1, "bf16": 2, "f64": 3, "i8": 4, "u8": 5, "i32": 6, "i64": 7,
          "i16": 8, "u16": 9, "bool": 10}
DTYPE_NAMES = {v: k for k, v in DTYPES.items()}
_NUMPY = {np.dtype(np.float32): 0, np.dtype(np.float16): 1, np.dtype(np.float64): 3,
          np.dtype(np.int8): 4, np.dtype(np.uint8): 5, np.dtype(np.int32): 6,
          np.dtype(np.int64): 7, np.dtype(np.int16): 8, np.dtype(np.uint16): 9,
          np.dtype(np.bool_): 10}
# bf16 has no NumPy type: its bits travel as uint16.
_TO_NUMPY = {0: np.float32, 1: np.float16, 2: np.uint16, 3: np.float64, 4: np.int8,
             5: np.uint8, 6: np.int32, 7: np.int64, 8: np.int16, 9: np.uint16, 10: np.bool_}

DEVICE_CPU, DEVICE_CUDA, DEVICE_CUDA_HOST = 0, 1, 2
# DLPack device codes of the ds_device types we can export (kDLCPU, kDLCUDA, kDLCUDAHost,
# kDLOpenCL, kDLCUDAManaged).
_DL_DEVICE = {0: 1, 1: 2, 2: 3, 3: 4, 4: 13}


def dtype_number(dtype):
    """A ds_dtype number from a name ("bf16"), a number, or a NumPy dtype."""
    if isinstance(dtype, int):
        if dtype not in DTYPE_NAMES:
            raise ValueError("unknown ds_dtype %d" % dtype)
        return dtype
    if isinstance(dtype, str) and dtype in DTYPES:
        return DTYPES[dtype]
    try:
        return _NUMPY[np.dtype(dtype)]
    except (TypeError, KeyError):
        raise ValueError("no ds_dtype for %r" % (dtype,)) from None


def numpy_dtype(dtype):
    """The NumPy dtype that holds a ds_dtype's elements (uint16 for bf16)."""
    return np.dtype(_TO_NUMPY[dtype_number(dtype)])


# ---------------------------------------------------------------- PyCapsule plumbing

_capi = ctypes.pythonapi
# The destructor gets the dying capsule as a raw pointer: converting it to a py_object would
# take a new reference to an object being freed. So it uses its own copies of the C-API
# functions that take raw pointers.
_CAPSULE_DESTRUCTOR = ctypes.CFUNCTYPE(None, ctypes.c_void_p)
_raw = ctypes.PyDLL(None)
_raw.PyCapsule_IsValid.restype = ctypes.c_int
_raw.PyCapsule_IsValid.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
_raw.PyCapsule_GetPointer.restype = ctypes.c_void_p
_raw.PyCapsule_GetPointer.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
_capi.PyCapsule_New.restype = ctypes.py_object
_capi.PyCapsule_New.argtypes = [ctypes.c_void_p, ctypes.c_char_p, _CAPSULE_DESTRUCTOR]
_capi.PyCapsule_GetPointer.restype = ctypes.c_void_p
_capi.PyCapsule_GetPointer.argtypes = [ctypes.py_object, ctypes.c_char_p]
_capi.PyCapsule_SetName.restype = ctypes.c_int
_capi.PyCapsule_SetName.argtypes = [ctypes.py_object, ctypes.c_char_p]
_capi.PyCapsule_IsValid.restype = ctypes.c_int
_capi.PyCapsule_IsValid.argtypes = [ctypes.py_object, ctypes.c_char_p]

_DLTENSOR = b"dltensor"
_USED = b"used_dltensor"


def _capsule_destructor(capsule):
    # A capsule nobody consumed still owns its DLManagedTensor: call its deleter. A consumed
    # one was renamed "used_dltensor" by the consumer, who calls the deleter itself.
    if _raw.PyCapsule_IsValid(capsule, _DLTENSOR):
        ptr = _raw.PyCapsule_GetPointer(capsule, _DLTENSOR)
        managed = ctypes.cast(ptr, ctypes.POINTER(_lib.DLManagedTensor))
        if managed.contents.deleter:
            managed.contents.deleter(managed)


_CAPSULE_DESTRUCTOR_FN = _CAPSULE_DESTRUCTOR(_capsule_destructor)

# Owners of exported memory, keyed by a token that the library hands back to on_release.
_exports = {}
_exports_lock = threading.Lock()
_next_token = [1]


def _on_release(token):
    with _exports_lock:
        _exports.pop(token, None)


_ON_RELEASE_FN = _lib.RELEASE_FN(_on_release)


# ---------------------------------------------------------------- Tensor

class Tensor:
    """A ds_tensor: a typed, strided view of memory this object keeps alive.

    Build one with :meth:`from_numpy` or :meth:`from_dlpack` (or the ``tensor()`` function,
    which takes either). ``numpy()`` gives a NumPy array sharing the memory (host memory only);
    ``to_dlpack()`` / ``__dlpack__`` export it. Thread-safety: a Tensor is plain data; the
    memory it describes is shared, so concurrent writes need the caller's synchronisation.
    """

    def __init__(self, c_tensor, owner, managed=None):
        self._c = c_tensor
        self._owner = owner        # the NumPy array or DLPack producer keeping the data alive
        self._managed = managed    # an imported DLManagedTensor whose deleter we must call

    # -- construction
    @classmethod
    def from_numpy(cls, array, dtype=None):
        """View of a NumPy array (no copy). ``dtype`` overrides the element type, e.g. "bf16"
        for a uint16 array holding bf16 bits. Raises ValueError for an unsupported dtype."""
        array = np.asarray(array)
        code = dtype_number(array.dtype if dtype is None else dtype)
        if np.dtype(_TO_NUMPY[code]).itemsize != array.dtype.itemsize:
            raise ValueError("dtype %s does not match the array's %s" %
                             (DTYPE_NAMES[code], array.dtype))
        if array.ndim > _lib.TENSOR_MAX_DIMS:
            raise ValueError("at most %d dimensions" % _lib.TENSOR_MAX_DIMS)
        item = array.dtype.itemsize
        if any(s < 0 or s % item for s in array.strides):
            raise ValueError("negative or unaligned strides are not supported; use a copy")
        nd = array.ndim
        shape = (ctypes.c_int64 * max(nd, 1))(*array.shape)
        strides = (ctypes.c_int64 * max(nd, 1))(*[s // item for s in array.strides])
        c = _lib.CTensor()
        data = array.ctypes.data if array.size else (array.ctypes.data or None)
        check(lib.ds_tensor_init(ctypes.byref(c), None, data, code, nd, shape, strides,
                                 _lib.Device(DEVICE_CPU, 0)))
        return cls(c, array)

    @classmethod
    def from_dlpack(cls, obj):
        """Zero-copy import of a DLPack tensor: an object with ``__dlpack__`` (torch tensors,
        NumPy >= 1.22 arrays) or a "dltensor" PyCapsule. The producer's memory stays alive
        until this Tensor is closed or collected."""
        capsule = obj.__dlpack__() if hasattr(obj, "__dlpack__") else obj
        if not _capi.PyCapsule_IsValid(capsule, _DLTENSOR):
            raise ValueError("not an unconsumed DLPack capsule")
        ptr = _capi.PyCapsule_GetPointer(capsule, _DLTENSOR)
        managed = ctypes.cast(ptr, ctypes.POINTER(_lib.DLManagedTensor))
        c = _lib.CTensor()
        status = lib.ds_tensor_from_dlpack(ctypes.byref(c), None, managed)
        if status != 0:
            # The capsule keeps ownership: its destructor frees it.
            check(status)
        _capi.PyCapsule_SetName(capsule, _USED)  # we own it now: we call the deleter
        return cls(c, obj, managed)

    def close(self):
        """Gives an imported DLPack tensor back to its producer (calls its deleter). The
        Tensor must not be used afterwards. Harmless to call twice."""
        managed, self._managed = self._managed, None
        self._owner = None
        if managed is not None and managed.contents.deleter:
            managed.contents.deleter(managed)

    def __del__(self):
        try:
            self.close()
        except Exception:  # interpreter shutdown: nothing sensible left to do
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- description
    @property
    def c(self):
        """The ctypes ds_tensor (for passing to lib functions)."""
        return self._c

    @property
    def dtype(self):
        return DTYPE_NAMES.get(self._c.dtype, "unknown")

    @property
    def shape(self):
        return tuple(self._c.shape[i] for i in range(self._c.ndim))

    @property
    def strides(self):
        """Strides in elements."""
        return tuple(self._c.strides[i] for i in range(self._c.ndim))

    @property
    def device(self):
        return (self._c.device.type, self._c.device.index)

    @property
    def data_ptr(self):
        return self._c.data or 0

    def numel(self):
        return lib.ds_tensor_numel(ctypes.byref(self._c))

    def is_contiguous(self):
        return bool(lib.ds_tensor_is_contiguous(ctypes.byref(self._c)))

    def nbytes(self):
        return lib.ds_tensor_nbytes(ctypes.byref(self._c))

    def numpy(self):
        """A NumPy array over the same memory (bf16 as uint16). Host memory only."""
        if self._c.device.type not in (DEVICE_CPU, DEVICE_CUDA_HOST):
            raise ValueError("tensor is in device memory; numpy() needs host memory")
        npdt = numpy_dtype(self._c.dtype)
        if self.numel() == 0:
            return np.zeros(self.shape, dtype=npdt)
        item = npdt.itemsize
        span = self.nbytes()
        buf = (ctypes.c_char * span).from_address(self._c.data)
        buf.keep = self  # the array's base is buf, which keeps this Tensor and its owner alive
        flat = np.frombuffer(buf, dtype=np.uint8)
        return np.lib.stride_tricks.as_strided(
            flat[:span - span % item].view(npdt), shape=self.shape,
            strides=tuple(s * item for s in self.strides))

    # -- export
    def to_dlpack(self):
        """A "dltensor" PyCapsule sharing this memory, for torch.utils.dlpack.from_dlpack.
        The memory's owner stays alive until the consumer releases the tensor."""
        with _exports_lock:
            token = _next_token[0]
            _next_token[0] += 1
            _exports[token] = self
        out = ctypes.POINTER(_lib.DLManagedTensor)()
        status = lib.ds_tensor_to_dlpack(ctypes.byref(out), None, ctypes.byref(self._c),
                                         _ON_RELEASE_FN, token)
        if status != 0:
            _on_release(token)
            check(status)
        return _capi.PyCapsule_New(ctypes.cast(out, ctypes.c_void_p), _DLTENSOR,
                                   _CAPSULE_DESTRUCTOR_FN)

    def __dlpack__(self, stream=None, **kwargs):
        return self.to_dlpack()

    def __dlpack_device__(self):
        return (_DL_DEVICE.get(self._c.device.type, 1), self._c.device.index)

    def __repr__(self):
        return "Tensor(dtype=%s, shape=%s, strides=%s, device=%s)" % (
            self.dtype, self.shape, self.strides, self.device)


def tensor(obj, dtype=None):
    """A Tensor from a Tensor (returned as is), a NumPy array, or a DLPack producer."""
    if isinstance(obj, Tensor):
        return obj
    if isinstance(obj, np.ndarray) or not (hasattr(obj, "__dlpack__") or
                                            type(obj).__name__ == "PyCapsule"):
        return Tensor.from_numpy(obj, dtype)
    return Tensor.from_dlpack(obj)


__all__ = ["Tensor", "tensor", "DTYPES", "dtype_number", "numpy_dtype", "DeepseekError"]
