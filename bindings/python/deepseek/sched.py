"""The scheduler: Python callables as prioritised tasks (ds_task_submit), groups, load.

A task body runs on a library worker thread with the GIL held, so Python tasks give
concurrency with C work (and I/O), not parallel Python. A body's exception fails the task
(InternalError, or the DeepseekError's own status); its successors are cancelled."""

import ctypes
import threading

from . import _lib
from ._lib import lib
from .context import Child
from .errors import DeepseekError, error_for

PRIO = {"urgent": 0, "normal": 1, "low": 2}
WAITING, READY, RUNNING, DONE = range(4)

_tasks = {}
_lock = threading.Lock()
_next = [1]


def _run(token):
    with _lock:
        fn = _tasks[token].fn
    try:
        fn()
        return 0
    except DeepseekError as e:
        _tasks[token].error = e
        return e.status if e.status > 0 else 17
    except BaseException as e:  # noqa: B902 - nothing may propagate into C
        _tasks[token].error = e
        return 17


def _done(token, _task, status):
    with _lock:
        t = _tasks.pop(token, None)
    if t is not None:
        t.status = status


_RUN_FN = _lib.TASK_FN(_run)
_DONE_FN = _lib.TASK_DONE_FN(_done)


class Task:
    """A submitted task: wait(), result status, cancel(), state."""

    def __init__(self, ctx, fn):
        self.ctx, self.fn = ctx, fn
        self._h = ctypes.c_void_p()
        self.status, self.error = None, None

    def wait(self, timeout=None):
        """Waits; raises the task's error. Returns False if not done within timeout (s)."""
        ms = -1 if timeout is None else int(timeout * 1000)
        st = lib.ds_task_wait(self._h, ms)
        if st == 11 and lib.ds_task_state(self._h) != DONE:
            return False
        if st != 0:
            raise error_for(st, repr(self.error) if self.error else
                            lib.ds_context_last_error(self.ctx.handle).decode())
        return True

    def cancel(self):
        return lib.ds_task_cancel(self._h) == 0

    @property
    def state(self):
        return lib.ds_task_state(self._h)

    def release(self):
        h, self._h = self._h, None
        if h is not None and h.value:
            lib.ds_task_release(h)

    def __del__(self):
        try:
            self.release()
        except Exception:
            pass


def submit(ctx, fn, prio="normal", name=None, deps=(), group=None):
    """Runs fn() as a task of priority "urgent", "normal" or "low" after ``deps`` (Tasks)."""
    t = Task(ctx, fn)
    ctx._track(t)
    with _lock:
        token = _next[0]
        _next[0] += 1
        _tasks[token] = t
    depv = (ctypes.c_void_p * max(len(deps), 1))(*[d._h.value for d in deps])
    o = _lib.TaskOptions(ctypes.sizeof(_lib.TaskOptions), PRIO.get(prio, prio),
                         name.encode() if name else None, depv, len(deps),
                         group.handle if group else None, _DONE_FN, token, 0, 0, -1, -1)
    st = lib.ds_task_submit(ctypes.byref(t._h), ctx.handle, _RUN_FN, token, ctypes.byref(o))
    if st != 0:
        with _lock:
            _tasks.pop(token, None)
        ctx.check(st)
    return t


class TaskGroup(Child):
    _destroy = lib.ds_task_group_destroy

    def __init__(self, ctx):
        h = ctypes.c_void_p()
        ctx.check(lib.ds_task_group_create(ctypes.byref(h), ctx.handle))
        super().__init__(ctx, h)

    def wait(self, timeout=None):
        ms = -1 if timeout is None else int(timeout * 1000)
        self.ctx.check(lib.ds_task_group_wait(self.handle, ms))


def start(ctx):
    ctx.check(lib.ds_sched_start(ctx.handle))


def workers(ctx):
    n = ctypes.c_int32()
    ctx.check(lib.ds_sched_workers(ctx.handle, ctypes.byref(n)))
    return n.value


def load(ctx):
    """(predicted load fraction, LOW cap, LOW duty percent)."""
    p, cap, duty = ctypes.c_double(), ctypes.c_int(), ctypes.c_int()
    ctx.check(lib.ds_sched_load(ctx.handle, ctypes.byref(p), ctypes.byref(cap),
                                ctypes.byref(duty)))
    return p.value, cap.value, duty.value


def cancelled():
    """Inside a task: True when it should stop."""
    return bool(lib.ds_task_cancelled())


def should_yield():
    return bool(lib.ds_task_should_yield())


def yield_now():
    """Inside a LOW task: runs waiting URGENT tasks here; returns how many."""
    return lib.ds_task_yield()
