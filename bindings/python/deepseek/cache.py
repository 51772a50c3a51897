"""The cache (ds_cache): bytes and NumPy arrays under bytes or str keys, in memory tiers or
in a persistent directory."""

import ctypes
import struct

import numpy as np

from . import _lib
from ._lib import lib
from .context import Child

CODEC_LZ4, CODEC_ZSTD, CODEC_NONE = 0, 1, 2
SHUFFLE, LOSSY_BF16 = 0x1, 0x2
L1, L2, L3, GPU = 1, 2, 3, 4
SYNC_EVERY_PUT, SYNC_BATCHED = 0, 1

# Arrays are stored as a small header then the raw C-order bytes, so get_array() gives back
# the same dtype and shape: "DSNP", u16 dtype-string length, u16 ndim, the dtype string
# (NumPy's dtype.str, e.g. "<f4"), ndim int64 dims.
_MAGIC = b"DSNP"
_HEAD = struct.Struct("<4sHH")

_CODECS = {"lz4": CODEC_LZ4, "zstd": CODEC_ZSTD, "none": CODEC_NONE, None: CODEC_LZ4}
_TIERS = {"l1": L1, "l2": L2, "l3": L3, "gpu": GPU}


def _key(key):
    if isinstance(key, str):
        key = key.encode()
    if not isinstance(key, (bytes, bytearray)):
        raise TypeError("cache keys are bytes or str")
    return bytes(key)


def encode_array(array):
    """The bytes put_array() stores for ``array`` (header + C-order data)."""
    array = np.ascontiguousarray(array)
    dt = array.dtype.str.encode()
    head = _HEAD.pack(_MAGIC, len(dt), array.ndim) + dt
    return head + struct.pack("<%dq" % array.ndim, *array.shape) + array.tobytes()


def decode_array(buf):
    """The NumPy array encoded by encode_array() (a copy that owns its memory)."""
    magic, dlen, ndim = _HEAD.unpack_from(buf, 0)
    if magic != _MAGIC:
        raise ValueError("value was not stored with put_array()")
    off = _HEAD.size
    dt = np.dtype(bytes(buf[off:off + dlen]).decode())
    off += dlen
    shape = struct.unpack_from("<%dq" % ndim, buf, off)
    off += 8 * ndim
    return np.frombuffer(bytes(buf[off:]), dtype=dt).reshape(shape).copy()


class Cache(Child):
    """A ds_cache. ``Cache(ctx, l1_bytes=64<<20, l2_bytes=0, codec="lz4", zstd_level=3,
    policy=None, shards=0, prefetch_depth=0, flags=0, gpu_bytes=0, gpu_device=-1)`` makes
    memory tiers (gpu_bytes > 0: a GPU tier on fabric device gpu_device, -1 the first CUDA
    GPU);
    ``Cache.persistent(ctx, path, max_bytes, codec="lz4", ...)`` opens a directory.
    Every method is thread-safe except close(). Keys are bytes or str."""

    _destroy = lib.ds_cache_destroy

    def __init__(self, ctx, l1_bytes=64 << 20, l2_bytes=0, codec="lz4", zstd_level=3,
                 policy=None, shards=0, prefetch_depth=0, flags=0, gpu_bytes=0, gpu_device=-1,
                 _handle=None):
        if _handle is None:
            o = _lib.CacheOptions(ctypes.sizeof(_lib.CacheOptions), flags, l1_bytes, l2_bytes,
                                  _CODECS[codec], zstd_level,
                                  policy.encode() if policy else None, shards, prefetch_depth,
                                  gpu_bytes, gpu_device)
            _handle = ctypes.c_void_p()
            ctx.check(lib.ds_cache_create(ctypes.byref(_handle), ctx.handle, ctypes.byref(o)))
        super().__init__(ctx, _handle)

    @classmethod
    def persistent(cls, ctx, path, max_bytes, codec="lz4", zstd_level=3,
                   durability=SYNC_BATCHED, sync_interval_ms=1000, read_only=False):
        """Opens (creating if needed) a persistent cache in directory ``path``."""
        o = _lib.CachePersistOptions(ctypes.sizeof(_lib.CachePersistOptions), _CODECS[codec],
                                     zstd_level, durability, sync_interval_ms,
                                     1 if read_only else 0, max_bytes)
        h = ctypes.c_void_p()
        ctx.check(lib.ds_cache_open_persistent_ex(ctypes.byref(h), ctx.handle, path.encode(),
                                                  ctypes.byref(o)))
        return cls(ctx, _handle=h)

    @classmethod
    def open_persistent(cls, ctx, path, max_bytes, codec="lz4"):
        """The short form (ds_cache_open_persistent): batched durability."""
        h = ctypes.c_void_p()
        ctx.check(lib.ds_cache_open_persistent(ctypes.byref(h), ctx.handle, path.encode(),
                                               max_bytes, _CODECS[codec]))
        return cls(ctx, _handle=h)

    # -- bytes
    def put(self, key, value):
        """Stores a copy of ``value`` (bytes-like) under ``key``."""
        k = _key(key)
        mv = memoryview(value).cast("B")
        buf = (ctypes.c_char * len(mv)).from_buffer_copy(mv) if len(mv) else None
        self.ctx.check(lib.ds_cache_put(self.handle, k, len(k), buf, len(mv)))

    def get(self, key, default=None):
        """The value as bytes, or ``default`` when absent."""
        k = _key(key)
        data, n, ref = ctypes.c_void_p(), ctypes.c_size_t(), ctypes.c_void_p()
        st = lib.ds_cache_get_ref(self.handle, k, len(k), ctypes.byref(data), ctypes.byref(n),
                                  ctypes.byref(ref))
        if st == 7:  # DS_ERR_NOT_FOUND
            return default
        if st == 8:  # DS_ERR_UNSUPPORTED: no pins on the disk tier, copy instead
            return self._get_copy(k, default)
        self.ctx.check(st)
        try:
            return ctypes.string_at(data, n.value) if n.value else b""
        finally:
            lib.ds_cache_release(self.handle, ref)

    def _get_copy(self, k, default):
        cap = 4096
        while True:
            buf = ctypes.create_string_buffer(cap)
            n = ctypes.c_size_t()
            st = lib.ds_cache_get(self.handle, k, len(k), buf, cap, ctypes.byref(n))
            if st == 7:
                return default
            if st == 14:  # DS_ERR_FULL: n says the size
                cap = n.value
                continue
            self.ctx.check(st)
            return buf.raw[:n.value]

    def get_into(self, key, buffer, stream=None):
        """Copies the value into a writable buffer (bytearray, NumPy array); returns its
        length. ``stream``: an access stream id (int) whose own prefetch detector learns this
        read (ds_cache_get_stream); None is stream 0. Raises NotFoundError, or FullError when
        the buffer is too small."""
        k = _key(key)
        mv = memoryview(buffer).cast("B")
        cbuf = (ctypes.c_char * len(mv)).from_buffer(mv)
        n = ctypes.c_size_t()
        if stream is None:
            st = lib.ds_cache_get(self.handle, k, len(k), cbuf, len(mv), ctypes.byref(n))
        else:
            st = lib.ds_cache_get_stream(self.handle, int(stream), k, len(k), cbuf, len(mv),
                                         ctypes.byref(n))
        self.ctx.check(st)
        return n.value

    # -- arrays
    def put_array(self, key, array):
        """Stores a NumPy array (dtype and shape kept)."""
        self.put(key, encode_array(array))

    def get_array(self, key, default=None):
        """The array stored by put_array(), or ``default``."""
        buf = self.get(key)
        return default if buf is None else decode_array(buf)

    # -- the rest
    def __contains__(self, key):
        k = _key(key)
        return bool(lib.ds_cache_contains(self.handle, k, len(k)))

    def remove(self, key):
        k = _key(key)
        self.ctx.check(lib.ds_cache_remove(self.handle, k, len(k)))

    def prefetch(self, key):
        k = _key(key)
        self.ctx.check(lib.ds_cache_prefetch(self.handle, k, len(k)))

    def pin(self, key):
        k = _key(key)
        self.ctx.check(lib.ds_cache_pin(self.handle, k, len(k)))

    def unpin(self, key):
        k = _key(key)
        self.ctx.check(lib.ds_cache_unpin(self.handle, k, len(k)))

    def flush(self):
        self.ctx.check(lib.ds_cache_flush(self.handle))

    def stats(self, tier="l1"):
        """Counters of one tier ("l1", "l2", "l3" or 1..3) as a dict."""
        s = _lib.CacheTierStats()
        s.struct_size = ctypes.sizeof(s)
        self.ctx.check(lib.ds_cache_stats(self.handle, _TIERS.get(tier, tier),
                                          ctypes.byref(s)))
        return {f: getattr(s, f) for f, _ in _lib.CacheTierStats._fields_
                if f != "struct_size"}
