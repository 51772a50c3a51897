"""The compute fabric (include/deepseek/fabric.h, fabric_barrier.h): the devices a context can
compute on, coherent buffers (MSI replicas per memory space, zero-copy where possible),
asynchronous acquires and timestamp barriers.

    import deepseek as ds
    with ds.Context() as ctx:
        for d in ds.fabric.devices(ctx): print(d.index, d.kind_name, d.name)
        a = np.zeros(1024, np.float32)
        with ds.Buffer.register(ctx, a, name="a") as buf:   # zero-copy: a's bytes are the replica
            with buf.acquire(0, "w") as view:                # NumPy view on a CPU device
                view[:] = 1.0

Acquires made through a Buffer are remembered: close() releases those still outstanding
before it destroys the buffer, so closing the context never fails on a forgotten release.
Arrays returned by acquire() on CPU devices view the buffer's memory: do not use them after
the acquire is released (the bytes may move or be freed).
"""

import ctypes
import enum
import threading
from collections import namedtuple

import numpy as np

from . import _lib
from ._lib import lib
from .context import Child

# ds_fabric_device_kind
CPU, CUDA, OPENCL, OTHER = 0, 1, 2, 3
_KIND_NAMES = {CPU: "cpu", CUDA: "cuda", OPENCL: "opencl", OTHER: "other"}
_KINDS = {v: k for k, v in _KIND_NAMES.items()}

# DS_DEVICE_CAP_* bits
(CAP_HOST_MEMORY, CAP_MAP_HOST, CAP_UNIFIED, CAP_ASYNC, CAP_LAUNCH, CAP_PREFER_COPY,
 CAP_HOST_CORES) = (0x1, 0x2, 0x4, 0x8, 0x10, 0x20, 0x40)
_CAP_NAMES = {CAP_HOST_MEMORY: "host_memory", CAP_MAP_HOST: "map_host",
              CAP_UNIFIED: "unified", CAP_ASYNC: "async", CAP_LAUNCH: "launch",
              CAP_PREFER_COPY: "prefer_copy", CAP_HOST_CORES: "host_cores"}

# ds_buffer_options.flags
NO_ZERO_COPY, MAP_HOST = 0x1, 0x2

# ds_access
READ, WRITE, RW = 1, 2, 3
_MODES = {"r": READ, "read": READ, "w": WRITE, "write": WRITE, "rw": RW, "read_write": RW,
          READ: READ, WRITE: WRITE, RW: RW}

BARRIER_FOREVER = -1


class ReplicaState(enum.IntEnum):
    """ds_replica_state."""
    INVALID = 0
    SHARED = 1
    MODIFIED = 2


_DeviceInfo = namedtuple("_DeviceInfo", "index kind memory_space numa_node compute_units caps "
                                        "memory_bytes name backend")


class Device(_DeviceInfo):
    """One fabric device (ds_device_info): index, kind (CPU, CUDA, OPENCL, OTHER),
    memory_space, numa_node, compute_units, caps (DS_DEVICE_CAP_* bits), memory_bytes,
    name, backend. ``kind_name`` and ``capabilities`` give the same as words."""
    __slots__ = ()

    @property
    def kind_name(self):
        return _KIND_NAMES.get(self.kind, "unknown")

    @property
    def capabilities(self):
        """The capability bits as a set of names ("host_memory", "map_host", ...)."""
        return {name for bit, name in _CAP_NAMES.items() if self.caps & bit}

    @property
    def is_host(self):
        """True when acquire() on it gives host pointers (CPU devices)."""
        return self.kind == CPU


def _kind(kind):
    if isinstance(kind, str):
        try:
            return _KINDS[kind.lower()]
        except KeyError:
            raise ValueError("device kind is one of %s" % sorted(_KINDS)) from None
    return int(kind)


def device_count(ctx):
    """Number of devices (at least 1: the CPU of NUMA node 0)."""
    n = ctypes.c_int32()
    ctx.check(lib.ds_fabric_device_count(ctypes.byref(n), ctx.handle))
    return n.value


def device(ctx, index):
    """The Device at ``index``; raises NotFoundError when there is none."""
    info = _lib.FabricDeviceInfo()
    info.struct_size = ctypes.sizeof(info)
    ctx.check(lib.ds_fabric_device_info(ctypes.byref(info), ctx.handle, int(index)))
    return Device(info.index, info.kind, info.memory_space, info.numa_node,
                  info.compute_units, info.caps, info.memory_bytes,
                  info.name.decode(errors="replace"), info.backend.decode(errors="replace"))


def devices(ctx):
    """Every device of the context, in index order."""
    return [device(ctx, i) for i in range(device_count(ctx))]


def find_device(ctx, kind, nth=0):
    """Index of the ``nth`` device of ``kind`` (CPU/"cpu", CUDA/"cuda", OPENCL/"opencl",
    OTHER/"other"), or None when there are fewer such devices."""
    out = ctypes.c_int32()
    st = lib.ds_fabric_device_find(ctypes.byref(out), ctx.handle, _kind(kind), int(nth))
    if st == 7:  # DS_ERR_NOT_FOUND: no such device is an answer here
        return None
    ctx.check(st)
    return out.value


def memory_space_count(ctx):
    """Number of memory spaces (one per device)."""
    n = ctypes.c_int32()
    ctx.check(lib.ds_fabric_memory_space_count(ctypes.byref(n), ctx.handle))
    return n.value


def _index(dev):
    """A device index from an int or a Device."""
    return dev.index if isinstance(dev, Device) else int(dev)


def _mode(mode):
    try:
        return _MODES[mode]
    except (KeyError, TypeError):
        raise ValueError("access mode is 'r', 'w', 'rw' or READ/WRITE/RW, not %r"
                         % (mode,)) from None


def _options(name, home_device, flags, device_mask):
    return _lib.BufferOptions(ctypes.sizeof(_lib.BufferOptions),
                              name.encode() if name else None, int(home_device), int(flags),
                              int(device_mask))


class Event:
    """Completion of an asynchronous acquire (ds_fabric_event). wait() once; an event
    dropped unwaited is waited for (and freed) by the garbage collector."""

    def __init__(self, ctx, handle):
        self._ctx = ctx
        self._h = handle

    @property
    def done(self):
        """True once wait() returned."""
        return self._h is None

    def wait(self):
        """Blocks until the transfer completed; raises its failure (DeviceError). Harmless
        twice."""
        h, self._h = self._h, None
        if h is not None:
            self._ctx.check(lib.ds_fabric_event_wait(h))

    def __del__(self):
        h, self._h = getattr(self, "_h", None), None
        if h is not None:
            try:
                lib.ds_fabric_event_wait(h)
            except Exception:  # interpreter shutdown: the library may be gone already
                pass


class Access:
    """One outstanding acquire of a Buffer on a device (from Buffer.acquire): ``value`` is
    a NumPy view of the bytes on a CPU device (read-only for mode "r"), else the device's
    handle as an int (a cl_mem, a CUdeviceptr). ``event`` is the Event of an asynchronous
    acquire (None when synchronous or already complete). A context manager: the with block
    gets ``value`` (after waiting for the event) and release() runs at its end."""

    def __init__(self, buf, device, mode, ptr, value, event):
        self.buffer, self.device, self.mode = buf, device, mode
        self.pointer = ptr
        self.value = value
        self.event = event
        self._open = True

    @property
    def released(self):
        return not self._open

    def wait(self):
        """Waits for the acquire's transfer (no-op when synchronous); returns ``value``."""
        if self.event is not None:
            self.event.wait()
        return self.value

    def release(self):
        """Ends the acquire (ds_buffer_release). Waits for a pending transfer first.
        Harmless twice."""
        if not self._open:
            return
        if self.event is not None:
            self.event.wait()
        self.buffer._release(self)

    def __enter__(self):
        return self.wait()

    def __exit__(self, *exc):
        self.release()


class Buffer(Child):
    """A coherent buffer (ds_buffer). ``Buffer(ctx, size, name=None, home_device=-1,
    flags=0, device_mask=0)`` allocates ``size`` zero-filled bytes; ``Buffer.register(ctx,
    array, ...)`` wraps a NumPy array's memory without copying (the array is kept alive until
    close()). Methods are thread-safe except close(), as in C."""

    _destroy = lib.ds_buffer_destroy

    def __init__(self, ctx, size, name=None, home_device=-1, flags=0, device_mask=0,
                 _handle=None, _array=None):
        if _handle is None:
            if int(size) < 0:
                raise ValueError("buffer size must be >= 0")
            o = _options(name, home_device, flags, device_mask)
            _handle = ctypes.c_void_p()
            ctx.check(lib.ds_buffer_create(ctypes.byref(_handle), ctx.handle, int(size),
                                           ctypes.byref(o)))
        self._array = _array
        self._lock = threading.Lock()
        self._outstanding = []
        self._size = lib.ds_buffer_size(_handle)
        self._bytes_type = ctypes.c_uint8 * self._size  # made once: views are then cheap
        super().__init__(ctx, _handle)

    @classmethod
    def register(cls, ctx, array, name=None, home_device=-1, flags=0, device_mask=0):
        """Wraps ``array`` (a writable, C-contiguous NumPy array) as a buffer without copying.
        Its bytes hold the latest data only when no device replica is Modified: acquire it
        for read on a CPU device to bring them up to date."""
        if not isinstance(array, np.ndarray):
            raise TypeError("Buffer.register needs a NumPy array")
        if not array.flags.c_contiguous or not array.flags.writeable:
            raise ValueError("Buffer.register needs a writable, C-contiguous array")
        o = _options(name, home_device, flags, device_mask)
        h = ctypes.c_void_p()
        ctx.check(lib.ds_buffer_register(ctypes.byref(h), ctx.handle,
                                         ctypes.c_void_p(array.ctypes.data), array.nbytes,
                                         ctypes.byref(o)))
        return cls(ctx, array.nbytes, _handle=h, _array=array)

    @property
    def array(self):
        """The registered NumPy array (None for a created buffer)."""
        return self._array

    @property
    def size(self):
        """Size in bytes (fixed at creation)."""
        self.handle  # raises once closed
        return self._size

    @property
    def name(self):
        return lib.ds_buffer_name(self.handle).decode(errors="replace")

    def state(self, device):
        """ReplicaState of the replica in ``device``'s memory space (an index or a Device)."""
        out = ctypes.c_int()
        self.ctx.check(lib.ds_buffer_state(ctypes.byref(out), self.handle, _index(device)))
        return ReplicaState(out.value)

    def acquire(self, device, mode="r", dtype=None, shape=None, asynchronous=False):
        """Makes the buffer usable on ``device`` (an index or a Device) in ``mode`` ("r",
        "w", "rw") and returns an Access (a context manager). On a CPU device the value is a
        NumPy view with ``dtype`` and ``shape`` (default: those of the registered array, else
        uint8 bytes); elsewhere the device handle as an int. ``asynchronous`` uses
        ds_buffer_acquire_async: the Access's event must complete before the bytes are used
        (the with block waits). Raises BusyError (conflicting acquire), NotFoundError (no such
        device), UnsupportedError (device not in the buffer's device_mask); messages name the
        buffer and the device."""
        m = _mode(mode)
        dev = _index(device)
        h = self.handle
        ptr, ev = ctypes.c_void_p(), ctypes.c_void_p()
        if asynchronous:
            st = lib.ds_buffer_acquire_async(ctypes.byref(ptr), ctypes.byref(ev), h, dev, m)
        else:
            st = lib.ds_buffer_acquire(ctypes.byref(ptr), h, dev, m)
        if st:
            self.ctx.check(st)
        event = Event(self.ctx, ev) if ev.value else None
        acc = Access(self, dev, m, ptr.value or 0, ptr.value or 0, event)
        try:
            if device_of(self.ctx, dev).is_host:
                acc.value = self._view(ptr.value, m, dtype, shape)
        except Exception:  # a dtype or shape that does not fit: undo the acquire
            if event is not None:
                event.wait()
            lib.ds_buffer_release(h, dev)
            raise
        with self._lock:
            self._outstanding.append(acc)
        return acc

    def acquire_async(self, device, mode="r", dtype=None, shape=None):
        """acquire(..., asynchronous=True): the Access's ``event`` (None when nothing is in
        flight) must complete (``access.wait()``) before the bytes are used."""
        return self.acquire(device, mode, dtype, shape, asynchronous=True)

    def _view(self, addr, mode, dtype, shape):
        if dtype is None and shape is None and self._array is not None:
            dtype, shape = self._array.dtype, self._array.shape
        dt = np.dtype(dtype if dtype is not None else np.uint8)
        view = np.frombuffer(self._bytes_type.from_address(addr), dtype=dt)
        if shape is not None:
            view = view.reshape(shape)
        if mode == READ:
            view.flags.writeable = False
        return view

    def _release(self, acc):
        st = lib.ds_buffer_release(self.handle, acc.device)
        if st:
            self.ctx.check(st)
        acc._open = False
        with self._lock:
            self._outstanding.remove(acc)

    def close(self):
        """Releases the acquires still outstanding through this object, then destroys the
        buffer and drops the registered array. Harmless twice."""
        if self._h is None or not self._h.value:
            self.ctx._forget(self)
            return
        with self._lock:
            pending = list(self._outstanding)
        for acc in pending:
            try:
                acc.release()
            except Exception:  # the destroy below reports what is still wrong
                pass
        h, self._h = self._h, None
        st = lib.ds_buffer_destroy(h)
        if st != 0:  # an acquire made outside this object: keep the buffer usable
            self._h = h
            self.ctx.check(st)
        self._array = None
        self.ctx._forget(self)


def device_of(ctx, index):
    """Cached Device lookup (indices are stable for a context's lifetime)."""
    cache = ctx.__dict__.setdefault("_fabric_devices", {})
    d = cache.get(index)
    if d is None:
        d = cache[index] = device(ctx, index)
    return d


_I64_MAX = (1 << 63) - 1
_U64_MAX = (1 << 64) - 1


def _seconds_to_ns(timeout):
    if timeout is None:
        return BARRIER_FOREVER
    if timeout < 0:
        raise ValueError("timeout must be >= 0 seconds, or None for no limit")
    ns = int(timeout * 1e9)
    return BARRIER_FOREVER if ns > _I64_MAX else ns  # centuries: no limit


def _timestamp(t):
    """Timestamps are uint64 in C: refuse what ctypes would silently wrap."""
    t = int(t)
    if t < 0 or t > _U64_MAX:
        raise ValueError("timestamp must be in 0 .. 2**64-1, not %d" % t)
    return t


def _participant(p):
    p = int(p)
    if p < 0 or p >= 0xFFFFFFFF:
        raise ValueError("participant must be in 0 .. 2**32-2, not %d" % p)
    return p


def _handle_of(obj, attrs):
    """A raw C handle from an int or an object that carries one (torch's
    Stream.cuda_stream, pyopencl's CommandQueue.int_ptr)."""
    if obj is None or isinstance(obj, int):
        return obj
    for a in attrs:
        if hasattr(obj, a):
            return int(getattr(obj, a))
    raise TypeError("expected an int handle or an object with one of %s" % (attrs,))


class Barrier(Child):
    """A timestamp barrier (ds_fabric_barrier): ``Barrier(ctx, participants=2, spin_ns=-1,
    name=None)``. Each participant publishes a monotonic timestamp; wait(t) returns once every
    participant has passed t. Timeouts are in seconds (None: no limit) and raise
    DsTimeoutError. Waits release the GIL, so Python threads can wait for each other.
    Thread-safe; close() cancels the barrier and waits for blocked waiters (they raise
    ShutdownError)."""

    _destroy = lib.ds_fabric_barrier_destroy

    def __init__(self, ctx, participants=2, spin_ns=-1, name=None):
        o = _lib.FabricBarrierOptions(ctypes.sizeof(_lib.FabricBarrierOptions),
                                      int(participants), int(spin_ns),
                                      name.encode() if name else None)
        h = ctypes.c_void_p()
        ctx.check(lib.ds_fabric_barrier_create(ctypes.byref(h), ctx.handle, ctypes.byref(o)))
        self.participants = int(participants)
        super().__init__(ctx, h)

    def publish(self, participant, t):
        """Participant ``participant`` has passed every timestamp <= ``t``."""
        self.ctx.check(lib.ds_fabric_barrier_publish(self.handle, _participant(participant),
                                                      _timestamp(t)))

    def wait(self, t, timeout=None):
        """Blocks until every participant has passed ``t``; timeout 0 only tests."""
        self.ctx.check(lib.ds_fabric_barrier_wait(self.handle, _timestamp(t),
                                                  _seconds_to_ns(timeout)))

    def arrive_and_wait(self, participant, timeout=None):
        """Phase barrier: publishes progress + 1 and waits for it; returns that phase."""
        out = ctypes.c_uint64()
        self.ctx.check(lib.ds_fabric_barrier_arrive_and_wait(
            self.handle, _participant(participant), _seconds_to_ns(timeout), ctypes.byref(out)))
        return out.value

    def progress(self, participant=None):
        """A participant's published timestamp, or (None) the smallest over all."""
        p = 0xFFFFFFFF if participant is None else _participant(participant)
        out = ctypes.c_uint64()
        self.ctx.check(lib.ds_fabric_barrier_progress(self.handle, p, ctypes.byref(out)))
        return out.value

    def cancel(self):
        """Closes the barrier: waits and publishes raise ShutdownError from now on."""
        self.ctx.check(lib.ds_fabric_barrier_cancel(self.handle))

    # Device participants. Queues and streams are raw handles (ints) or objects carrying one
    # (pyopencl CommandQueue.int_ptr, torch.cuda.Stream.cuda_stream).
    def publish_opencl(self, participant, queue, t):
        """A marker on the cl_command_queue ``queue`` publishes ``t`` when reached."""
        q = _handle_of(queue, ("int_ptr",))
        self.ctx.check(lib.ds_fabric_barrier_publish_opencl(
            self.handle, _participant(participant), q, _timestamp(t)))

    def wait_opencl(self, queue, t):
        """Commands enqueued on ``queue`` after this start once every participant passed
        ``t`` (the host does not block; the user event is not handed out)."""
        q = _handle_of(queue, ("int_ptr",))
        self.ctx.check(lib.ds_fabric_barrier_wait_opencl(self.handle, q, _timestamp(t), None))

    def publish_cuda(self, participant, stream, t):
        """A host function on cudaStream_t ``stream`` (None: legacy default stream) publishes
        ``t`` when the stream reaches it."""
        s = _handle_of(stream, ("cuda_stream",))
        self.ctx.check(lib.ds_fabric_barrier_publish_cuda(
            self.handle, _participant(participant), s, _timestamp(t)))

    def wait_cuda(self, stream, t):
        """Work enqueued on ``stream`` after this starts once every participant passed
        ``t``."""
        s = _handle_of(stream, ("cuda_stream",))
        self.ctx.check(lib.ds_fabric_barrier_wait_cuda(self.handle, s, _timestamp(t)))
