"""Tests of the fabric graphs' bindings (deepseek.graph): kernels with Python CPU and OpenCL
implementations, graphs, plans and cost models. Imported by test_bindings.py (so the ctest
`python_bindings` runs them); also runnable alone."""

import os
import shutil
import sys
import tempfile
import unittest

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import deepseek as ds  # noqa: E402
from deepseek import fabric as F  # noqa: E402

T, NT = 16, 2  # tile size, tiles per side

# Buffers first (access order), then the by-value argument n.
TILE_GEMM_CL = """
__kernel void tile_gemm(__global const float *a, __global const float *b,
                        __global float *c, int n) {
  int i = get_global_id(1), j = get_global_id(0);
  float acc = c[i * n + j];
  for (int k = 0; k < n; k++) acc += a[i * n + k] * b[k * n + j];
  c[i * n + j] = acc;
}
"""


def graph_context():
    return ds.Context(name="pygraph", no_env=True, log_level=ds.context.LOG_ERROR,
                      params={"sched_workers": 2, "stats_file": 0, "telemetry_enable": 0})


def tile_gemm(views, args):
    n = int(np.frombuffer(args, np.int32)[0])
    a, b, c = (v.reshape(n, n) for v in views)
    c += a @ b


def make_kernel(ctx, name="py_tile_gemm", **kw):
    return ds.Kernel(ctx, name, cpu=tile_gemm, dtypes=np.float32,
                     opencl_source=TILE_GEMM_CL, opencl_name="tile_gemm",
                     opencl_arg_sizes=[4], **kw)


def opencl_device(ctx):
    return F.find_device(ctx, "opencl")


class TiledGemm:
    """C = A * B in NT x NT tiles of T x T, one node per tile product."""

    def __init__(self, ctx, kernel, rng):
        self.a = rng.integers(0, 4, (NT * T, NT * T)).astype(np.float32)
        self.b = rng.integers(0, 4, (NT * T, NT * T)).astype(np.float32)
        self.A = self._tiles(ctx, self.a, "A")
        self.B = self._tiles(ctx, self.b, "B")
        self.C = self._tiles(ctx, np.zeros_like(self.a), "C")
        self.graph = ds.Graph(ctx)
        for i in range(NT):
            for j in range(NT):
                for k in range(NT):
                    self.graph.add(kernel, [(self.A[i][k], "r"), (self.B[k][j], "r"),
                                            (self.C[i][j], "rw")],
                                   args=np.int32(T), global_size=(T, T),
                                   name="c%d%d_k%d" % (i, j, k))

    @staticmethod
    def _tiles(ctx, m, name):
        out = []
        for i in range(NT):
            row = []
            for j in range(NT):
                tile = np.ascontiguousarray(m[i * T:(i + 1) * T, j * T:(j + 1) * T])
                buf = ds.Buffer(ctx, tile.nbytes, name="%s%d%d" % (name, i, j))
                with buf.acquire(0, "w", dtype=np.float32, shape=(T, T)) as v:
                    v[:] = tile
                row.append(buf)
            out.append(row)
        return out

    def zero_c(self):
        for row in self.C:
            for buf in row:
                with buf.acquire(0, "w", dtype=np.float32) as v:
                    v[:] = 0

    def result(self):
        c = np.zeros((NT * T, NT * T), np.float32)
        for i in range(NT):
            for j in range(NT):
                with self.C[i][j].acquire(0, "r", dtype=np.float32, shape=(T, T)) as v:
                    c[i * T:(i + 1) * T, j * T:(j + 1) * T] = v
        return c


class GraphGemmTest(unittest.TestCase):
    def test_cpu_opencl_heft_identical(self):
        with graph_context() as ctx:
            k = make_kernel(ctx)
            t = TiledGemm(ctx, k, np.random.default_rng(7))
            g = t.graph
            nodes, edges = g.size()
            self.assertEqual(nodes, NT ** 3)
            self.assertEqual(len(g), NT ** 3)
            self.assertEqual(edges, NT * NT * (NT - 1))  # the k-chain into each C tile
            expected = t.a @ t.b
            plans = [("cpu", g.plan(device=0))]
            ocl = opencl_device(ctx)
            if ocl is None:
                print("test_graph: no OpenCL device, all-OpenCL plan skipped", file=sys.stderr)
            else:
                plans.append(("opencl", g.plan(policy="device", device=ocl)))
            plans.append(("heft", g.plan()))
            for label, p in plans:
                with self.subTest(plan=label):
                    want = [0] * nodes if label == "cpu" else \
                        [ocl] * nodes if label == "opencl" else None
                    if want is not None:
                        self.assertEqual(p.devices, want)
                    info = p.info()
                    self.assertEqual(info.nodes, nodes)
                    self.assertGreaterEqual(info.makespan_s, 0.0)
                    self.assertTrue(np.isfinite(info.makespan_s))
                    self.assertGreaterEqual(info.bytes_moved, 0)
                    self.assertLessEqual(info.calibrating, nodes)
                    t.zero_c()
                    ri = p.run()
                    self.assertGreater(ri.makespan_s, 0.0)
                    self.assertGreaterEqual(ri.bytes_moved, 0)
                    np.testing.assert_array_equal(t.result(), expected)
                    p.close()
            # The runs fed the cost model: CPU timings exist at the node size.
            size = 3 * T * T * 4
            pred = k.predict(0, size)
            self.assertIsNotNone(pred)
            self.assertGreaterEqual(pred.seconds, 0.0)
            # run() without a plan plans HEFT itself.
            t.zero_c()
            g.run()
            np.testing.assert_array_equal(t.result(), expected)

    def test_explicit_and_random_placement(self):
        with graph_context() as ctx:
            k = make_kernel(ctx)
            t = TiledGemm(ctx, k, np.random.default_rng(3))
            n = len(t.graph)
            with t.graph.plan(placement=[0] * n) as p:
                self.assertEqual(p.devices, [0] * n)
                t.zero_c()
                p.run()
                np.testing.assert_array_equal(t.result(), t.a @ t.b)
            with t.graph.plan(policy="random", seed=5) as p:
                ndev = F.device_count(ctx)
                self.assertTrue(all(0 <= d < ndev for d in p.devices))
                t.zero_c()
                p.run()
                np.testing.assert_array_equal(t.result(), t.a @ t.b)
            with self.assertRaises(ValueError):
                t.graph.plan(placement=[0])
            with self.assertRaises(ValueError):
                t.graph.plan(policy="fastest")


class GraphErrorsTest(unittest.TestCase):
    def test_cycle_names_node(self):
        with graph_context() as ctx:
            k = ds.Kernel(ctx, "noop", cpu=lambda views, args: None)
            with ds.Buffer(ctx, 64) as b1, ds.Buffer(ctx, 64) as b2:
                g = ds.Graph(ctx)
                n0 = g.add(k, [(b1, "rw")], name="first_node")
                n1 = g.add(k, [(b2, "rw")], name="second_node")
                self.assertEqual((n0, n1), (0, 1))
                self.assertEqual(g.size(), (2, 0))
                g.add_dep(n0, n1)
                g.add_dep(n1, n0)
                self.assertEqual(g.size(), (2, 2))
                with self.assertRaises(ds.InvalidArgError) as cm:
                    g.plan()
                self.assertRegex(str(cm.exception), "first_node|second_node")
                self.assertIn("cycle", str(cm.exception))
                with self.assertRaises(ds.InvalidArgError):
                    g.add_dep(0, 0)
                with self.assertRaises(ds.InvalidArgError):
                    g.add_dep(0, 5)
                g.close()

    def test_bad_input(self):
        with graph_context() as ctx:
            with self.assertRaises(ds.InvalidArgError):
                ds.Kernel(ctx, "nothing")  # no implementation
            with self.assertRaises(TypeError):
                ds.Kernel(ctx, "x", cpu=42)
            k = ds.Kernel(ctx, "noop2", cpu=lambda views, args: None)
            with ds.Graph(ctx) as g, ds.Buffer(ctx, 16) as b:
                with self.assertRaises(ds.StateError):
                    g.plan()  # empty graph
                with self.assertRaises(ValueError):
                    g.add(k, [(b, "x")])
                with self.assertRaises(ds.InvalidArgError):
                    g.add(k, [(b, "r"), (b, "w")])  # a buffer twice
                with self.assertRaises(ValueError):
                    g.add(k, [(b, "r")], args=bytes(300))
                with self.assertRaises(TypeError):
                    g.add(k, [("not a buffer", "r")])
                self.assertEqual(len(g), 0)

    def test_python_exception_fails_node(self):
        def boom(views, args):
            raise RuntimeError("kernel failed on purpose")

        with graph_context() as ctx:
            k = ds.Kernel(ctx, "boom", cpu=boom)
            with ds.Buffer(ctx, 32) as b:
                g = ds.Graph(ctx)
                g.add(k, [(b, "rw")], name="exploding")
                with self.assertRaises(ds.DeepseekError) as cm:
                    g.run(g.plan(device=0))
                self.assertIn("exploding", str(cm.exception))
                self.assertIsInstance(cm.exception.__cause__, RuntimeError)

    def test_kernel_sees_args_and_views(self):
        seen = []

        def fill(views, args):
            (v,) = views
            seen.append((v.dtype, v.shape, args))
            v[:] = np.frombuffer(args, np.float64)[0]

        with graph_context() as ctx:
            k = ds.Kernel(ctx, "fill", cpu=fill, dtypes=[np.float64])
            a = np.zeros(8, np.float64)
            with ds.Buffer.register(ctx, a) as b:
                g = ds.Graph(ctx)
                g.add(k, [(b, "w")], args=np.float64(2.5))
                g.run()
                with b.acquire(0, "r") as v:
                    np.testing.assert_array_equal(v, np.full(8, 2.5))
            self.assertEqual(seen, [(np.dtype(np.float64), (8,),
                                     np.float64(2.5).tobytes())])

    def test_many_python_nodes_on_workers(self):
        # Independent nodes run on both scheduler workers, each taking the GIL in turn.
        def mark(views, args):
            views[0][:] = np.frombuffer(args, np.int64)[0]

        with graph_context() as ctx:
            k = ds.Kernel(ctx, "mark", cpu=mark, dtypes=np.int64)
            bufs = [ds.Buffer(ctx, 64) for _ in range(32)]
            g = ds.Graph(ctx)
            for i, b in enumerate(bufs):
                g.add(k, [(b, "w")], args=np.int64(i + 1))
            self.assertEqual(g.size(), (32, 0))
            for _ in range(2):
                g.run(g.plan(device=0))
            for i, b in enumerate(bufs):
                with b.acquire(0, "r", dtype=np.int64) as v:
                    np.testing.assert_array_equal(v, np.full(8, i + 1))
            bufs[3].close()
            with self.assertRaises(ds.DeepseekError):
                g.run()  # a closed buffer is refused before C sees it


class CostModelTest(unittest.TestCase):
    def test_record_predict(self):
        with graph_context() as ctx:
            k = ds.Kernel(ctx, "model_only", cpu=lambda v, a: None)
            self.assertIsNone(k.predict(0, 1000))
            for _ in range(3):
                k.record(0, 1000, 0.002)
            k.record(0, 4000, 0.008)
            p = k.predict(0, 1000)
            self.assertAlmostEqual(p.seconds, 0.002, places=9)
            self.assertEqual(p.samples, 3)
            mid = k.predict(0, 2000)  # log-log fit between the sizes seen
            self.assertEqual(mid.samples, 0)
            self.assertGreater(mid.seconds, 0.002)
            self.assertLess(mid.seconds, 0.008)
            with self.assertRaises(ds.InvalidArgError):
                k.record(0, 1000, -1.0)
            with self.assertRaises(ds.InvalidArgError):
                k.record(1000, 1000, 1.0)
            k.save_model()  # no cache: a no-op

    def test_model_persists_in_cache(self):
        d = tempfile.mkdtemp(prefix="pygraph")
        try:
            with graph_context() as ctx:
                cache = ds.Cache.open_persistent(ctx, d, 1 << 20)
                k = ds.Kernel(ctx, "persisted", cpu=lambda v, a: None, model_cache=cache)
                k.record(0, 512, 0.5)
                k.save_model()
            with graph_context() as ctx:
                cache = ds.Cache.open_persistent(ctx, d, 1 << 20)
                k = ds.Kernel(ctx, "persisted", cpu=lambda v, a: None, model_cache=cache)
                p = k.predict(0, 512)
                self.assertIsNotNone(p)
                self.assertAlmostEqual(p.seconds, 0.5, places=9)
                self.assertEqual(p.samples, 1)
        finally:
            shutil.rmtree(d, ignore_errors=True)

    def test_close_order(self):
        with graph_context() as ctx:
            g = ds.Graph(ctx)  # made before the kernel: the kernel's close closes it
            k = ds.Kernel(ctx, "order", cpu=lambda v, a: None)
            with ds.Buffer(ctx, 8) as b:
                g.add(k, [(b, "r")])
                p = g.plan(device=0)
            k.close()
            with self.assertRaises(ds.DeepseekError):
                g.size()
            with self.assertRaises(ds.DeepseekError):
                p.info()


if __name__ == "__main__":
    unittest.main()
