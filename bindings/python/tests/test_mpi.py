"""Tests of the MPI transport's Python bindings (deepseek.Mpi).

Run under mpirun (ctest `python_mpi_np2`: 2 ranks), this file is an SPMD program: every rank
runs the same steps in the same order, meeting at cross-rank barriers between them, and prints
"python mpi OK (rank R of N)" at the end (the ctest's verdict: mpirun with --enable-recovery
exits 0 whatever the ranks do). A failing rank prints the traceback and exits 1; its peers
then fail their next wait with a timeout instead of hanging.

Imported by test_bindings.py, its MpiSingleProcessTest runs in the plain suite: one process,
a singleton MPI world of size 1 (or UnsupportedError in a build without MPI).
"""

import os
import signal
import sys
import traceback
import unittest

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import deepseek as ds  # noqa: E402

MPI_THREAD_SERIALIZED = 2  # Open MPI's value; MPI_THREAD_MULTIPLE is 3


def new_context(timeout_ms=20000):
    # Quiet, no stats file, two workers; waits bounded so a failed peer cannot hang a rank.
    return ds.Context(name="pympi", no_env=True, log_level=ds.context.LOG_ERROR,
                      params={"sched_workers": 2, "stats_file": 0, "telemetry_enable": 0,
                              "mpi_timeout_ms": timeout_ms})


def expected_data(n=1000):
    """The same bytes on every rank: rank 0 owns them, rank 1 checks its fetched copy."""
    return np.random.default_rng(12).standard_normal(n)


class MpiSingleProcessTest(unittest.TestCase):
    """One rank: every call works locally (or raises UnsupportedError without MPI)."""

    @classmethod
    def setUpClass(cls):
        cls.ctx = new_context(5000)
        try:
            cls.mpi = ds.Mpi(cls.ctx)
        except ds.UnsupportedError as e:
            cls.mpi = None
            cls.unsupported = str(e)

    @classmethod
    def tearDownClass(cls):
        if cls.mpi is not None:
            cls.mpi.close()
        cls.ctx.close()

    def setUp(self):
        if self.mpi is None:
            self.assertIn("libopenmpi-dev", self.unsupported)
            self.skipTest("no MPI in this build: UnsupportedError checked")

    def test_a_rank_and_size(self):
        m = self.mpi
        self.assertEqual((m.rank, m.size), (0, 1))
        self.assertGreaterEqual(m.thread_level, MPI_THREAD_SERIALIZED)
        self.assertTrue(m.rank_alive(0))
        self.assertFalse(m.rank_alive(1))
        self.assertFalse(m.rank_alive(-1))
        self.assertEqual(m.task_counts(), (0, 0))

    def test_buffer_fetch_is_own_memory(self):
        m = self.mpi
        a = np.arange(16, dtype=np.float32)
        m.register(11, owner=0, array=a)
        try:
            v = m.fetch(11, np.float32, shape=(4, 4))
            np.testing.assert_array_equal(v, a.reshape(4, 4))
            a[0] = 99  # on the owner the view is the array's memory
            self.assertEqual(v[0, 0], 99)
            self.assertFalse(v.flags.writeable)
            m.flush(11)  # no-op on the owner
            with self.assertRaises(ds.BusyError):
                m.register(11, owner=0, array=a)
        finally:
            m.unregister(11)
        with self.assertRaises(ds.NotFoundError):
            m.fetch(11)
        with self.assertRaises(ds.NotFoundError):
            m.unregister(11)

    def test_fabric_buffer_attach(self):
        m = self.mpi
        a = np.full(8, 3.0)
        with ds.Buffer.register(self.ctx, a) as buf:
            m.attach(12, owner=0, buffer=buf)
            np.testing.assert_array_equal(m.fetch(12, np.float64), a)
            m.unregister(12)

    def test_tasks_here_and_on_the_owner(self):
        m = self.mpi
        m.register_task("py_upper", lambda b: b.upper())

        def add_one(args, data):
            data += int(args)
            return bytes(data[:2])
        m.register_task("py_add", add_one, with_data=True)
        self.assertEqual(m.submit("py_upper", b"abc"), b"ABC")
        self.assertEqual(m.submit("py_upper", b"xyz", rank=0, prio="urgent"), b"XYZ")
        t = m.submit_async("py_upper", b"q")
        self.assertEqual(t.wait(10), b"Q")
        self.assertEqual(t.wait(), b"Q")  # the result stays
        a = np.zeros(4, np.uint8)
        m.register(13, owner=0, array=a)
        try:
            self.assertEqual(m.submit("py_add", b"5", buffer=13), b"\x05\x05")
            np.testing.assert_array_equal(a, [5, 5, 5, 5])
        finally:
            m.unregister(13)

    def test_bad_input(self):
        m = self.mpi
        m.register_task("py_fail", lambda b: 1 / 0)
        m.register_task("py_big", lambda b: b"x" * 100)
        with self.assertRaises(ds.InternalError) as cm:
            m.submit("py_fail")
        self.assertIn("ZeroDivisionError", str(cm.exception))
        with self.assertRaises(ds.FullError):
            m.submit("py_big", result_cap=10)
        with self.assertRaises(ds.BusyError):
            m.register_task("py_fail", lambda b: b)
        with self.assertRaises(ds.NotFoundError):
            m.submit("no_such_task")
        with self.assertRaises(ds.InvalidArgError):
            m.submit("py_big", rank=3)
        with self.assertRaises(ds.InvalidArgError):
            m.register(14, owner=2, size=8)  # owner out of range
        with self.assertRaises(ds.InvalidArgError):
            m.register(14, owner=0, size=8)  # no memory on the owner
        with self.assertRaises(ValueError):
            m.register(0, owner=0, size=8)
        with self.assertRaises(ValueError):
            m.submit("x" * 64)
        with self.assertRaises(ValueError):
            m.submit("py_big", prio="soon")
        with self.assertRaises(ValueError):
            m.register(15, owner=0, array=np.zeros((4, 4))[:, 0])  # not contiguous
        with self.assertRaises(TypeError):
            m.register_task("py_none", None)

    def test_barrier_and_bridge(self):
        m = self.mpi
        m.arrive(5)
        m.wait(5, timeout=5)
        m.arrive(3)  # smaller than published: ignored
        with self.assertRaises(ds.DsTimeoutError):
            m.wait(6, timeout=0.05)
        with ds.Barrier(self.ctx, participants=2) as b:
            m.bridge(b, first=1)
            b.publish(0, 7)
            m.arrive(7)
            b.wait(7, timeout=5)
            m.bridge(None)
        with self.assertRaises(ValueError):
            m.arrive(-1)


def run_ranks():
    """The SPMD test under mpirun: returns normally only if every step passed here."""
    ctx = new_context()
    mpi = ds.Mpi(ctx)
    rank, size = mpi.rank, mpi.size
    other = (rank + 1) % size
    step = [0]

    def sync():  # every rank passed the same point
        step[0] += 1
        mpi.arrive(step[0])
        mpi.wait(step[0], timeout=30)

    # ranks
    assert size >= 2, size
    assert 0 <= rank < size
    assert all(mpi.rank_alive(r) for r in range(size))
    assert not mpi.rank_alive(size)
    assert mpi.thread_level >= MPI_THREAD_SERIALIZED

    # a buffer owned by rank 0, fetched everywhere with identical bytes; one owned by the last
    # rank, landing in arrays the others supply
    want = expected_data()
    mine = want.copy() if rank == 0 else None
    mpi.register(1, owner=0, array=mine, size=want.nbytes)
    last = size - 1
    land = np.full(64, -1, np.int32) if rank != last else np.arange(64, dtype=np.int32)
    mpi.register(2, owner=last, array=land)
    sync()
    got = mpi.fetch(1, np.float64, timeout=30)
    assert got.tobytes() == want.tobytes(), "fetched bytes differ on rank %d" % rank
    v2 = mpi.fetch(2, np.int32, shape=(8, 8), timeout=30)
    np.testing.assert_array_equal(v2.ravel(), np.arange(64))
    np.testing.assert_array_equal(land, np.arange(64))  # the copy landed in our array
    sync()
    if rank == 0:  # the owner changes its data; the others see it after a flush
        mine[0] = 42.0
    sync()
    mpi.flush(1)
    assert mpi.fetch(1, np.float64, timeout=30)[0] == 42.0
    sync()

    # a fabric Buffer attached on every rank, owned by rank 0: its host replica travels
    fab = np.full(32, 7.5 if rank == 0 else 0.0, np.float32)
    fbuf = ds.Buffer.register(ctx, fab)
    mpi.attach(4, owner=0, buffer=fbuf)
    sync()
    np.testing.assert_array_equal(mpi.fetch(4, np.float32, timeout=30), np.full(32, 7.5))
    sync()
    mpi.unregister(4)
    fbuf.close()

    # the owner's own writes, announced, drop the others' copies (no flush)
    if rank == 0:
        mine[1] = 43.0
        mpi.written(1)
    else:
        try:
            mpi.written(1)
            raise AssertionError("only the owner may say it wrote")
        except ds.InvalidArgError:
            pass
    sync()
    assert mpi.fetch(1, np.float64, timeout=30)[1] == 43.0
    want[1] = 43.0
    sync()

    # pushes: rank 0 (the owner of buffer 1) sends it to every other rank, which receives it
    if rank == 0:
        mine[2] = 44.0
        for r in range(1, size):
            mpi.send(1, r, timeout=30)
    else:
        got = mpi.recv(1, np.float64, timeout=30)
        assert got[2] == 44.0 and got[1] == 43.0
        assert mpi.fetch(1, np.float64)[2] == 44.0  # the pushed copy counts as fetched
        try:
            mpi.send(1, 0)
            raise AssertionError("only the owner sends")
        except ds.InvalidArgError:
            pass
    want[2] = 44.0
    sync()

    # a graph across the ranks: x[r] *= 2 on its owner r, then y = sum of all x on rank 0
    def twice(views, args):
        views[0] *= 2

    def total(views, args):
        views[-1][:] = sum(v for v in views[:-1])

    k2 = ds.Kernel(ctx, "py_twice", cpu=twice, dtypes=np.float32)
    ks = ds.Kernel(ctx, "py_total", cpu=total, dtypes=np.float32)
    xa = [np.full(4, r + 1 if r == rank else -1, np.float32) for r in range(size)]
    xs = [ds.Buffer.register(ctx, a) for a in xa]
    ys = ds.Buffer.register(ctx, np.zeros(4, np.float32))
    for r, xb in enumerate(xs):
        mpi.attach(300 + r, owner=r, buffer=xb)
    mpi.attach(399, owner=0, buffer=ys)
    g = ds.Graph(ctx)
    for xb in xs:
        g.add(k2, [(xb, "rw")])
    g.add(ks, [(xb, "r") for xb in xs] + [(ys, "w")])
    info = mpi.run_graph(g, device=ds.fabric.find_device(ctx, "cpu"), timeout=30)
    assert info.nodes_here == 1 + (rank == 0), info
    assert info.recvs == (size - 1 if rank == 0 else 0), info
    sync()
    np.testing.assert_array_equal(mpi.fetch(399, np.float32, timeout=30),
                                  np.full(4, float(size * (size + 1)), np.float32))
    sync()
    g.close()
    for r in range(size):
        mpi.unregister(300 + r)
    mpi.unregister(399)
    for b in xs + [ys]:
        b.close()
    k2.close()
    ks.close()

    # Python tasks on the other rank, and owner-computes on buffer 1's owner
    mpi.register_task("whoami", lambda b: b + b":%d" % rank)
    mpi.register_task("sum1", lambda args, data: np.float64(data.view(np.float64).sum())
                      .tobytes(), with_data=True)
    mpi.register_task("boom", lambda b: {}[b])
    sync()
    assert mpi.submit("whoami", b"hi", rank=other, timeout=30) == b"hi:%d" % other
    assert mpi.submit("whoami", b"me", rank=rank, timeout=30) == b"me:%d" % rank
    total = np.frombuffer(mpi.submit("sum1", buffer=1, timeout=30), np.float64)[0]
    want[0] = 42.0
    assert abs(total - want.sum()) < 1e-9, (total, want.sum())
    try:
        mpi.submit("boom", b"k", rank=other, timeout=30)
        raise AssertionError("a task raising on the other rank must fail here")
    except ds.InternalError:
        pass
    sync()
    _migrated, ran_for_others = mpi.task_counts()
    assert ran_for_others >= 1, ran_for_others  # at least whoami ran here for the other

    # barriers: arrive/wait, and bridged to a fabric Barrier
    with ds.Barrier(ctx, participants=size) as b:
        mpi.bridge(b)
        mpi.arrive(100)
        mpi.wait(100, timeout=30)
        b.wait(100, timeout=30)
        mpi.bridge(None)
    step[0] = 100

    # bad input raises the right classes
    dup = np.zeros(64, np.int32)
    for exc, call in ((ds.NotFoundError, lambda: mpi.fetch(99)),
                      (ds.InvalidArgError, lambda: mpi.register(3, owner=size, size=8)),
                      (ds.InvalidArgError, lambda: mpi.submit("whoami", rank=size)),
                      (ds.NotFoundError, lambda: mpi.submit("nope", rank=other)),
                      (ds.BusyError, lambda: mpi.register(2, owner=last, array=dup)),
                      (ds.BusyError, lambda: mpi.register_task("whoami", len)),
                      (ds.DsTimeoutError, lambda: mpi.wait(10 ** 6, timeout=0.05)),
                      (ValueError, lambda: mpi.register(0, owner=0, size=8))):
        try:
            call()
        except exc:
            continue
        raise AssertionError("expected %s" % exc.__name__)
    sync()
    mpi.unregister(1)
    mpi.unregister(2)
    mpi.close()  # collective: waits for the other ranks
    ctx.close()
    return rank, size


def main():
    signal.signal(signal.SIGALRM, lambda *a: (print("watchdog: rank stuck", flush=True),
                                                 os._exit(1)))
    signal.alarm(150)
    try:
        rank, size = run_ranks()
    except BaseException:  # noqa: B902 - report, then end this rank
        traceback.print_exc()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(1)
    print("python mpi OK (rank %d of %d)" % (rank, size), flush=True)


if __name__ == "__main__":
    main()
