"""The fabric's MPI transport (include/deepseek/fabric_mpi.h): ranks, buffers with an owner
rank, Python tasks run by name on other ranks, fabric graphs run across the ranks
(owner-computes), timestamp barriers across ranks.

Every rank runs the same program (SPMD, started by mpirun) and makes the same calls in the
same order: the same Mpi endpoints, the same buffer ids with the same owner, the same task
names.

    import deepseek as ds
    with ds.Context() as ctx, ds.Mpi(ctx) as mpi:
        a = np.arange(256, dtype=np.float32) if mpi.rank == 0 else None
        mpi.register(1, owner=0, array=a, size=1024)     # rank 0 owns buffer 1
        v = mpi.fetch(1, np.float32)                     # every rank: rank 0's bytes
        mpi.register_task("twice", lambda args: args * 2)
        mpi.arrive(1); mpi.wait(1)                       # every rank passed timestamp 1
        mpi.submit("twice", b"ab", rank=1 - mpi.rank)    # -> b"abab", computed on the other rank

Tasks: a registered Python callable runs on a library thread (the scheduler's worker, or the
executor thread serving another rank's request) with the GIL held, so it must not block on
something only the submitting Python thread can do. It takes the argument bytes and returns
the result bytes (or None for none); registered with ``with_data=True`` it also gets, for
owner-computes submissions, a writable uint8 NumPy view of the buffer's memory on its owner
(None otherwise). An exception fails the task (InternalError on the submitting rank, or the
DeepseekError's own status).

Timeouts are in seconds; None uses the context's mpi_timeout_ms. In a build without MPI every
call raises UnsupportedError. Methods are thread-safe except close(), as in C.
"""

import collections
import ctypes
import threading

import numpy as np

from . import _lib
from .context import Child
from .errors import DeepseekError, error_for
from .fabric import _index, _timestamp
from ._lib import lib

_DS_ERR_FULL, _DS_ERR_INTERNAL = 14, 17
_U64_MAX = (1 << 64) - 1
_NAME_MAX = 63


def _ms(timeout):
    """Seconds (None: the context's default) to the C timeout in milliseconds."""
    if timeout is None:
        return -1
    if timeout < 0:
        raise ValueError("timeout must be >= 0 seconds, or None for the default")
    return int(timeout * 1000)


GraphInfo = collections.namedtuple(
    "GraphInfo", "nodes_here sends recvs bytes_sent bytes_received makespan_s")
GraphInfo.__doc__ = "ds_mpi_graph_info: what this rank did in Mpi.run_graph()."


def _buffer_id(buf_id):
    buf_id = int(buf_id)
    if buf_id <= 0 or buf_id > _U64_MAX:
        raise ValueError("buffer id must be in 1 .. 2**64-1, not %d" % buf_id)
    return buf_id


def _name(name):
    raw = name.encode() if isinstance(name, str) else bytes(name)
    if not raw or len(raw) > _NAME_MAX or b"\0" in raw:
        raise ValueError("task name must be 1..%d bytes without NUL, not %r" % (_NAME_MAX, name))
    return raw


class _Registration:
    """What Python keeps for one registered buffer: its size and the memory's owner object
    (a NumPy array, or the attached fabric Buffer) so the memory outlives the registration."""

    def __init__(self, size, keep):
        self.size, self.keep = size, keep


class MpiTask:
    """A submitted task (ds_mpi_task_submit). wait() returns its result bytes or raises its
    failure. The result memory lives here: the task is waited for before its handle is
    released, so dropping an unwaited MpiTask blocks until the task ended (bounded by the
    context's mpi_timeout_ms)."""

    def __init__(self, mpi, name, result_cap):
        self._mpi = mpi
        self.name = name
        self._h = ctypes.c_void_p()
        self._result = ctypes.create_string_buffer(max(int(result_cap), 1))
        self._cap = int(result_cap)
        self._len = ctypes.c_size_t(0)
        self._value = None
        self._keep = None  # the task options and name bytes, alive while the task is

    def wait(self, timeout=None):
        """Blocks until the task ended; returns its result bytes. Raises DsTimeoutError when
        not done within ``timeout`` seconds (None: no limit), or the task's failure."""
        if self._value is not None:
            return self._value
        if self._h is None or not self._h.value:
            raise DeepseekError("MpiTask is released")
        ms = -1 if timeout is None else _ms(timeout)
        st = lib.ds_task_wait(self._h, ms)
        if st == 11 and lib.ds_task_state(self._h) != 3:  # not DONE: the wait timed out
            raise error_for(st, "task '%s' not done within %s s" % (self.name, timeout))
        self._mpi._forget_task(self)
        if st != 0:
            err = self._mpi._take_error(self.name)
            raise error_for(st, err or lib.ds_context_last_error(
                self._mpi.ctx.handle).decode(errors="replace"))
        self._value = self._result.raw[:self._len.value]
        return self._value

    def release(self):
        """Waits for the task to end, then frees its handle. Harmless twice."""
        h, self._h = self._h, None
        if h is not None and h.value:
            lib.ds_task_wait(h, -1)
            lib.ds_task_release(h)

    def __del__(self):
        try:
            self.release()
        except Exception:  # interpreter shutdown: the library may be gone already
            pass


class Mpi(Child):
    """An MPI endpoint of a context (ds_mpi): ``Mpi(ctx, finalize=True, migrate=True)``.
    Collective: every rank creates it. ``finalize``: if this endpoint initialised MPI, its
    close() calls MPI_Finalize (MPI cannot be initialised again in the process afterwards).
    ``migrate``: LOW tasks submitted with no rank may move to a less loaded rank. close() is
    collective too: it waits for the other ranks to reach their own close()."""

    _destroy = lib.ds_mpi_destroy

    def __init__(self, ctx, finalize=True, migrate=True):
        o = _lib.MpiOptions(ctypes.sizeof(_lib.MpiOptions), 1 if finalize else 0,
                            1 if migrate else 0)
        h = ctypes.c_void_p()
        ctx.check(lib.ds_mpi_create(ctypes.byref(h), ctx.handle, ctypes.byref(o)))
        self._lock = threading.Lock()
        self._buffers = {}  # id -> _Registration
        self._tasks = {}  # name -> (callable, C trampoline): kept alive while registered
        self._errors = {}  # task name -> repr of the last exception its callable raised here
        self._pending = set()  # MpiTasks not waited yet: their result memory must survive
        self._bridge = None
        super().__init__(ctx, h)

    # -- ranks
    @property
    def rank(self):
        """This process's rank."""
        return int(lib.ds_mpi_rank(self.handle))

    @property
    def size(self):
        """The number of ranks."""
        return int(lib.ds_mpi_size(self.handle))

    @property
    def thread_level(self):
        """The thread support MPI gave (MPI_THREAD_SERIALIZED or MPI_THREAD_MULTIPLE)."""
        return int(lib.ds_mpi_thread_level(self.handle))

    def rank_alive(self, rank):
        """True while ``rank`` is believed alive (False: declared dead, or out of range)."""
        return bool(lib.ds_mpi_rank_alive(self.handle, int(rank)))

    def task_counts(self):
        """(tasks this rank migrated to others, tasks it ran for others) since creation."""
        mig, ran = ctypes.c_uint64(), ctypes.c_uint64()
        self.ctx.check(lib.ds_mpi_task_counts(self.handle, ctypes.byref(mig), ctypes.byref(ran)))
        return mig.value, ran.value

    # -- buffers
    def register(self, buf_id, owner, array=None, size=None):
        """Registers buffer ``buf_id`` owned by rank ``owner``. On the owner ``array`` (a
        C-contiguous, writable NumPy array) is its memory, kept alive until unregister();
        elsewhere ``array`` is where fetched copies land, or None with ``size`` bytes (the
        library allocates the copy). Raises BusyError for an id already registered."""
        buf_id = _buffer_id(buf_id)
        ptr = None
        if array is not None:
            if not isinstance(array, np.ndarray):
                raise TypeError("array must be a NumPy array, not %s" % type(array).__name__)
            if not array.flags.c_contiguous or not array.flags.writeable:
                raise ValueError("array must be C-contiguous and writable")
            if size is not None and int(size) != array.nbytes:
                raise ValueError("size %d differs from the array's %d bytes"
                                 % (int(size), array.nbytes))
            ptr, size = array.ctypes.data, array.nbytes
        elif size is None:
            raise ValueError("give the buffer's array (required on its owner) or its size")
        if int(size) < 0:
            raise ValueError("buffer size must be >= 0")
        self.ctx.check(lib.ds_mpi_buffer_register(self.handle, buf_id, int(owner), ptr,
                                                  int(size)))
        with self._lock:
            self._buffers[buf_id] = _Registration(int(size), array)

    def attach(self, buf_id, owner, buffer):
        """Registers the fabric ``buffer`` (a deepseek.Buffer of the same size on every rank)
        as buffer ``buf_id`` owned by rank ``owner``; transfers go through its host replica.
        ``buffer`` must stay open until unregister()."""
        buf_id = _buffer_id(buf_id)
        self.ctx.check(lib.ds_mpi_buffer_attach(self.handle, buf_id, int(owner), buffer.handle))
        with self._lock:
            self._buffers[buf_id] = _Registration(buffer.size, buffer)

    def unregister(self, buf_id):
        """Unregisters ``buf_id`` (NotFoundError if not registered); on the owner it waits for
        transfers in flight. Views from fetch() must not be used afterwards."""
        buf_id = _buffer_id(buf_id)
        self.ctx.check(lib.ds_mpi_buffer_unregister(self.handle, buf_id))
        with self._lock:
            self._buffers.pop(buf_id, None)

    def _view(self, buf_id, data, dtype, shape):
        with self._lock:
            reg = self._buffers.get(buf_id)
        if reg is None or reg.size == 0:  # not through this object: the C call already failed
            return np.empty(0, dtype)
        raw = np.ctypeslib.as_array((ctypes.c_uint8 * reg.size).from_address(data.value))
        raw.flags.writeable = False
        if reg.size % dtype.itemsize:
            raise ValueError("buffer of %d bytes is not a whole number of %s"
                             % (reg.size, dtype.name))
        view = raw.view(dtype)
        return view.reshape(shape) if shape is not None else view

    def send(self, buf_id, to, timeout=None):
        """Pushes buffer ``buf_id`` from this rank, its owner, to rank ``to``, which takes it
        with recv() (ds_mpi_buffer_send: no request message, one MPI send). Returns when the
        send completed. InvalidArgError when this rank is not the owner or ``to`` is bad."""
        self.ctx.check(lib.ds_mpi_buffer_send(self.handle, _buffer_id(buf_id), int(to),
                                              _ms(timeout)))

    def recv(self, buf_id, dtype=np.uint8, shape=None, timeout=None):
        """Receives buffer ``buf_id`` pushed by its owner with send() into this rank's copy
        and returns a read-only view of it, as fetch() does (the copy then counts as
        fetched). InvalidArgError on the owner; DsTimeoutError when nothing came."""
        buf_id = _buffer_id(buf_id)
        data = ctypes.c_void_p()
        self.ctx.check(lib.ds_mpi_buffer_recv(self.handle, buf_id, ctypes.byref(data),
                                              _ms(timeout)))
        return self._view(buf_id, data, np.dtype(dtype), shape)

    def fetch(self, buf_id, dtype=np.uint8, shape=None, timeout=None):
        """A read-only NumPy view of buffer ``buf_id``: on the owner its memory, elsewhere the
        cached copy, transferred from the owner first if there is none. The view is valid
        until flush(buf_id) or unregister(buf_id). Raises NotFoundError, FormatError (sizes
        differ between ranks), DsTimeoutError, IoError (the owner died)."""
        buf_id = _buffer_id(buf_id)
        data = ctypes.c_void_p()
        self.ctx.check(lib.ds_mpi_buffer_fetch(self.handle, buf_id, ctypes.byref(data),
                                               _ms(timeout)))
        return self._view(buf_id, data, np.dtype(dtype), shape)

    def flush(self, buf_id=0):
        """Drops the cached copy of ``buf_id`` (0: of every buffer) so the next fetch
        transfers again; no-op on the owner. BusyError while a fetch of it is in flight."""
        buf_id = int(buf_id)
        if buf_id < 0 or buf_id > _U64_MAX:
            raise ValueError("buffer id must be in 0 .. 2**64-1, not %d" % buf_id)
        self.ctx.check(lib.ds_mpi_buffer_flush(self.handle, buf_id))

    def written(self, buf_id):
        """Says that this rank, the owner of ``buf_id``, changed its memory by itself: every
        other rank drops its cached copy, so its next fetch() transfers again (ordered before
        this rank's later messages, e.g. a barrier arrival). InvalidArgError on a rank that
        is not the owner."""
        self.ctx.check(lib.ds_mpi_buffer_written(self.handle, _buffer_id(buf_id)))

    # -- graphs
    def run_graph(self, graph, placement=None, device=None, timeout=None):
        """Runs the fabric ``graph`` (a deepseek.Graph built the same way on every rank,
        over Buffers attached with attach()) across the ranks (ds_mpi_graph_run; collective).
        A node runs on the owner of the first buffer it writes, or on ``placement[node]``
        (a rank, or -1 for that default); the needed transfers are made automatically and
        written buffers end on their owners. ``device``: run this rank's nodes on that
        device (default: HEFT over this rank's devices). Returns GraphInfo for this rank.
        The GIL is released while it runs."""
        o = _lib.MpiGraphOptions()
        o.struct_size = ctypes.sizeof(o)
        o.timeout_ms = _ms(timeout)
        pl = None
        if placement is not None:
            ranks = [int(r) for r in placement]
            if len(ranks) != len(graph):
                raise ValueError("placement needs one rank per node (%d), got %d"
                                 % (len(graph), len(ranks)))
            pl = (ctypes.c_int32 * max(len(ranks), 1))(*ranks)
            o.placement = pl
        po = None
        if device is not None:
            po = _lib.PlanOptions()
            po.struct_size = ctypes.sizeof(po)
            po.policy, po.device, po.seed, po.calibrate = 1, _index(device), 1, 1
            o.plan = ctypes.pointer(po)
        info = _lib.MpiGraphInfo()
        info.struct_size = ctypes.sizeof(info)
        st = lib.ds_mpi_graph_run(self.handle, graph.handle, ctypes.byref(o), ctypes.byref(info))
        errs = []
        for k in {id(k): k for k in graph._kernels}.values():
            errs.extend(k._take_errors())
        if st:
            detail = lib.ds_context_last_error(self.ctx.handle) or b""
            raise error_for(st, detail.decode(errors="replace")) from (errs[0] if errs else None)
        return GraphInfo(info.nodes_here, info.sends, info.recvs, info.bytes_sent,
                         info.bytes_received, info.makespan_s)

    # -- tasks
    def register_task(self, name, fn, with_data=False):
        """Registers the callable ``fn`` under ``name`` (the same on every rank). ``fn(args)``
        gets the argument bytes and returns the result bytes (or None); with
        ``with_data=True`` it is called ``fn(args, data)``, ``data`` being the owner's
        buffer memory as a writable uint8 array for owner-computes submissions, else None.
        It runs on a library thread under the GIL. BusyError when the name is taken."""
        raw = _name(name)
        if not callable(fn):
            raise TypeError("fn must be callable")
        key = raw.decode(errors="replace")
        tramp = _lib.MPI_TASK_FN(lambda _user, call: self._run(key, fn, with_data, call))
        with self._lock:
            if key in self._tasks:
                raise error_for(13, "a task named '%s' is already registered" % key)
            self._tasks[key] = (fn, tramp)
        st = lib.ds_mpi_task_register(self.handle, raw, tramp, None)
        if st != 0:
            with self._lock:
                self._tasks.pop(key, None)
            self.ctx.check(st)

    def _run(self, key, fn, with_data, call_p):
        """The C trampoline's body: nothing may propagate into C."""
        try:
            c = call_p.contents
            args = ctypes.string_at(c.args, c.args_len) if c.args_len else b""
            if with_data:
                data = None
                if c.data and c.data_len:
                    data = np.ctypeslib.as_array(
                        (ctypes.c_uint8 * c.data_len).from_address(c.data))
                out = fn(args, data)
            else:
                out = fn(args)
            out = b"" if out is None else bytes(out)
            if len(out) > c.result_cap:
                self._note_error(key, "result of %d bytes exceeds the capacity %d"
                                 % (len(out), c.result_cap))
                return _DS_ERR_FULL
            if out:
                ctypes.memmove(c.result, out, len(out))
            c.result_len = len(out)
            return 0
        except DeepseekError as e:
            self._note_error(key, repr(e))
            return e.status if e.status > 0 else _DS_ERR_INTERNAL
        except BaseException as e:  # noqa: B902 - an exception may not cross into C
            self._note_error(key, repr(e))
            return _DS_ERR_INTERNAL

    def _note_error(self, key, text):
        with self._lock:
            self._errors[key] = "task '%s' raised %s" % (key, text)

    def _forget_task(self, t):
        with self._lock:
            self._pending.discard(t)

    def _take_error(self, key):
        with self._lock:
            return self._errors.pop(key, None)

    def submit_async(self, name, args=b"", rank=None, buffer=None, result_cap=65536,
                     prio="low"):
        """Submits the registered task ``name`` with the bytes ``args`` and returns an
        MpiTask. ``rank``: run on that rank (None: here, or migrated when the scheduler
        holds a LOW task back and another rank is idler); ``buffer``: owner-computes, run on
        the owner of that registered buffer id (overrides rank). ``result_cap``: the largest
        result accepted (FullError beyond). ``prio``: "urgent", "normal" or "low"."""
        raw = _name(name)
        args = bytes(args)
        if int(result_cap) < 0:
            raise ValueError("result_cap must be >= 0")
        prios = {"urgent": 0, "normal": 1, "low": 2}
        if prio not in prios:
            raise ValueError("prio is 'urgent', 'normal' or 'low', not %r" % (prio,))
        t = MpiTask(self, raw.decode(errors="replace"), result_cap)
        topts = _lib.TaskOptions(ctypes.sizeof(_lib.TaskOptions), prios[prio], raw, None, 0,
                                 None, _lib.TASK_DONE_FN(), None, 0, 0, -1, -1)
        o = _lib.MpiSubmitOptions(ctypes.sizeof(_lib.MpiSubmitOptions),
                                  -1 if rank is None else int(rank),
                                  0 if buffer is None else _buffer_id(buffer),
                                  ctypes.pointer(topts))
        t._keep = (raw, topts, o)
        st = lib.ds_mpi_task_submit(ctypes.byref(t._h), self.handle, raw, args or None,
                                    len(args), t._result if t._cap else None, t._cap,
                                    ctypes.byref(t._len), ctypes.byref(o))
        self.ctx.check(st)
        with self._lock:
            self._pending.add(t)
        self.ctx._track(t)
        return t

    def submit(self, name, args=b"", rank=None, buffer=None, result_cap=65536, prio="low",
               timeout=None):
        """submit_async(...).wait(timeout): the task's result bytes."""
        t = self.submit_async(name, args, rank=rank, buffer=buffer, result_cap=result_cap,
                              prio=prio)
        try:
            return t.wait(timeout)
        finally:
            self._forget_task(t)
            t.release()

    # -- barriers
    def arrive(self, ts):
        """Publishes that this rank passed timestamp ``ts`` (does not wait)."""
        self.ctx.check(lib.ds_mpi_barrier_arrive(self.handle, _timestamp(ts)))

    def wait(self, ts, timeout=None):
        """Waits until every rank published a timestamp >= ``ts``. DsTimeoutError; IoError
        when a rank that has not passed ``ts`` died."""
        self.ctx.check(lib.ds_mpi_barrier_wait(self.handle, _timestamp(ts), _ms(timeout)))

    def bridge(self, barrier, first=0):
        """Publishes every rank r's timestamps to participant ``first`` + r of the fabric
        ``barrier`` (a deepseek.Barrier with at least first + size participants), so local
        threads can wait on it for "every rank passed T". None removes the bridge; close()
        removes it too. The barrier must stay open while bridged."""
        first = int(first)
        if first < 0 or first > 0xFFFFFFFF:
            raise ValueError("first must be in 0 .. 2**32-1, not %d" % first)
        self.ctx.check(lib.ds_mpi_barrier_bridge(
            self.handle, None if barrier is None else barrier.handle, first))
        self._bridge = barrier

    def close(self):
        """Collective: waits for this rank's unwaited tasks, then ds_mpi_destroy (which
        waits for every live rank to reach its own close()). Harmless twice."""
        with self._lock:
            pending, self._pending = list(self._pending), set()
        for t in pending:
            t.release()
        super().close()
        self._buffers, self._tasks, self._bridge = {}, {}, None
