"""Tests of the Python bindings (unittest; run by ctest as `python_bindings` with
DEEPSEEK_LIBRARY set to the built libdeepseek.so). torch-dependent tests are skipped with a
message when torch is not importable."""

import os
import shutil
import subprocess
import sys
import tempfile
import threading
import unittest

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import deepseek as ds  # noqa: E402
from deepseek import precision as P  # noqa: E402
# The fabric's tests (and its graphs') live in their own files; importing them here runs them under this ctest.
from test_fabric import (FabricBarrierTest, FabricBufferTest,  # noqa: E402,F401
                         FabricDevicesTest)
from test_graph import (CostModelTest, GraphErrorsTest,  # noqa: E402,F401
                        GraphGemmTest)
from test_mpi import MpiSingleProcessTest  # noqa: E402,F401 - a one-rank MPI world

DSTENSOR = sys.modules["deepseek.tensor"]  # the module (ds.tensor is the function)

try:
    import torch
    import torch.utils.dlpack
except ImportError:  # pragma: no cover - depends on the machine
    torch = None

RNG = np.random.default_rng(7)


def new_context():
    # Quiet, no stats file, two workers: the test machine is small and shared.
    return ds.Context(name="pytest", no_env=True, log_level=ds.context.LOG_ERROR,
                      params={"sched_workers": 2, "stats_file": 0, "telemetry_enable": 0})


class ExportsTest(unittest.TestCase):
    def test_every_export_is_bound_or_listed(self):
        out = subprocess.run(["nm", "-D", "--defined-only", ds.lib.path], check=True,
                             capture_output=True, text=True).stdout
        exported = {line.split()[2].split("@")[0] for line in out.splitlines()
                    if len(line.split()) == 3 and line.split()[1] in "TtWi"}
        exported = {s for s in exported if s.startswith("ds_")}
        self.assertGreater(len(exported), 100)
        unbound = exported - set(ds.PROTOTYPES) - set(ds.UNBOUND)
        self.assertEqual(unbound, set(), "exported but neither bound nor listed in UNBOUND")
        self.assertEqual(set(ds.PROTOTYPES) - exported, set(), "bound but not exported")
        self.assertEqual(set(ds.UNBOUND) - exported, set(), "UNBOUND lists a missing symbol")
        self.assertEqual(ds.lib.missing, [])
        for name, reason in ds.UNBOUND.items():
            self.assertTrue(reason, name)


class ErrorsTest(unittest.TestCase):
    def test_one_class_per_status(self):
        code = 1
        while ds.lib.ds_status_name(code) != b"DS_UNKNOWN":
            cls = ds.BY_STATUS[code]
            self.assertTrue(issubclass(cls, ds.DeepseekError))
            self.assertEqual(cls.status, code)
            self.assertEqual(cls.status_name, ds.lib.ds_status_name(code).decode())
            code += 1
        self.assertIs(ds.BY_STATUS[20], ds.ShapeError)
        self.assertIs(ds.BY_STATUS[11], ds.DsTimeoutError)

    def test_message_has_detail(self):
        with new_context() as ctx:
            with self.assertRaises(ds.InvalidArgError) as cm:
                ctx.set_param("sched_spin_us", -5)
            self.assertIn("sched_spin_us", str(cm.exception))
            with self.assertRaises(ds.NotFoundError):
                ctx.get_param("no_such_param")


class ContextTest(unittest.TestCase):
    def test_params_and_lifetime(self):
        ctx = new_context()
        self.assertEqual(ctx.get_param("sched_workers"), 2)
        ctx.set_param("DS_SCHED_SPIN_US", 10)
        self.assertEqual(ctx.get_param(ds.param_number("sched_spin_us")), 10)
        name, dflt, lo, hi = ds.param_info("telemetry_period_ms")
        self.assertEqual((name, dflt, lo, hi), ("telemetry_period_ms", 100, 1, 60000))
        cache = ds.Cache(ctx, l1_bytes=1 << 20)
        ctx.close()
        with self.assertRaises(ds.DeepseekError):
            cache.put(b"k", b"v")  # closed with its context
        ctx.close()  # harmless twice
        self.assertIn("cuda=", ds.build_summary())

    def test_stats_topology_trace(self):
        with new_context() as ctx, tempfile.TemporaryDirectory() as tmp:
            topo = ctx.topology()
            self.assertGreaterEqual(topo["pus"], 1)
            path = os.path.join(tmp, "t.json")
            ctx.trace_start(path)
            with ctx.trace_span("py", "span"):
                ctx.trace_counter("c", 1.5)
            ctx.trace_stop()
            with open(path) as f:
                self.assertIn('"span"', f.read())
            with ds.Cache(ctx, l1_bytes=1 << 20) as cache:
                cache.put("a", b"1")
                cache.get("a")
                cache.stats("l1")
            self.assertGreaterEqual(ctx.stat("cache.l1.hits"), 1)


class CacheTest(unittest.TestCase):
    def test_bytes_and_arrays(self):
        with new_context() as ctx, ds.Cache(ctx, l1_bytes=1 << 20, l2_bytes=4 << 20,
                                            codec="zstd") as c:
            c.put(b"k\x00bin", b"value")
            c.put("empty", b"")
            self.assertEqual(c.get(b"k\x00bin"), b"value")
            self.assertEqual(c.get("empty"), b"")
            self.assertIsNone(c.get("absent"))
            self.assertIn("empty", c)
            c.remove("empty")
            self.assertNotIn("empty", c)
            with self.assertRaises(ds.NotFoundError):
                c.remove("empty")
            for arr in (RNG.standard_normal((3, 4, 5)).astype(np.float32),
                        np.arange(10, dtype=np.int64), np.float16([1.5, -2]),
                        RNG.standard_normal((7, 3)).T):  # non-contiguous input
                c.put_array("arr", arr)
                back = c.get_array("arr")
                self.assertEqual(back.dtype, arr.dtype)
                np.testing.assert_array_equal(back, arr)
            buf = bytearray(16)
            self.assertEqual(c.get_into(b"k\x00bin", buf), 5)
            with self.assertRaises(ds.FullError):
                c.get_into(b"k\x00bin", bytearray(2))
            # Fill past L1 so entries move down to the compressed tier and come back.
            big = np.zeros(64 * 1024, np.float32)
            for i in range(40):
                c.put_array("z%d" % i, big + i)
            for i in range(40):
                np.testing.assert_array_equal(c.get_array("z%d" % i), big + i)
            l2 = c.stats("l2")
            self.assertGreater(l2["hits"] + l2["evictions"], 0)

    def test_gpu_tier(self):
        # The GPU tier on the first OpenCL device (PoCL exposes the CPU as one) or CUDA GPU.
        with new_context() as ctx:
            dev = ds.fabric.find_device(ctx, "cuda")
            if dev is None:
                dev = ds.fabric.find_device(ctx, "opencl")
            if dev is None:
                self.skipTest("no CUDA or OpenCL device")
            with ds.Cache(ctx, l1_bytes=1 << 20, shards=1, policy="lru", gpu_bytes=3 * 1100,
                          gpu_device=dev) as c:
                for i in range(6):
                    c.put("g%d" % i, bytes([i]) * 1000)
                g = c.stats("gpu")
                self.assertEqual((g["entries"], g["evictions"]), (3, 3))
                self.assertEqual(c.stats("l1")["entries"], 3)
                for i in range(6):
                    self.assertEqual(c.get("g%d" % i), bytes([i]) * 1000)

    def test_get_stream(self):
        # Two interleaved strided streams: each stream's own detector predicts its keys.
        with new_context() as ctx, ds.Cache(ctx, l1_bytes=1 << 20, shards=1,
                                            prefetch_depth=2) as c:
            for i in range(10):
                c.put("a/%03d" % i, b"a")
                c.put("b/%03d" % (3 * i), b"b")
            buf = bytearray(4)
            for i in range(10):
                self.assertEqual(c.get_into("a/%03d" % i, buf, stream=1), 1)
                self.assertEqual(c.get_into("b/%03d" % (3 * i), buf, stream=2), 1)
            self.assertEqual(ctx.stat("cache.prefetch.predicted_stride"), 2 * 2 * 8)
            self.assertEqual(ctx.stat("cache.prefetch.correct"), 2 * 7)

    def test_persistent_reopen(self):
        tmp = tempfile.mkdtemp()
        try:
            with new_context() as ctx:
                with ds.Cache.persistent(ctx, tmp, 8 << 20, durability=ds.cache.SYNC_EVERY_PUT) as c:
                    c.put_array("ckpt", np.arange(100, dtype=np.float32))
                with ds.Cache.open_persistent(ctx, tmp, 8 << 20) as c:
                    np.testing.assert_array_equal(c.get_array("ckpt"),
                                                  np.arange(100, dtype=np.float32))
                with self.assertRaises(ds.DeepseekError):
                    ds.Cache(ctx, policy="nonsense")
        finally:
            shutil.rmtree(tmp)


class BatcherTest(unittest.TestCase):
    def test_python_handler_many_threads(self):
        seen = []

        def handler(x):
            seen.append(x.shape[0])
            return x.sum(axis=1, keepdims=True) * 2

        with new_context() as ctx, ds.Batcher(ctx, handler, input_shape=(4,),
                                              output_shape=(1,), max_batch_size=8,
                                              max_queue_delay_us=2000) as b:
            errors = []

            def client(k):
                try:
                    for i in range(30):
                        x = np.full(4, k * 100 + i, np.float32)
                        y = b(x, timeout=60)
                        if y[0] != 8 * (k * 100 + i):
                            errors.append((k, i, y))
                except Exception as e:  # surfaced below
                    errors.append(e)

            threads = [threading.Thread(target=client, args=(k,)) for k in range(4)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            self.assertEqual(errors, [])
            st = b.stats()
            self.assertEqual(st["completed"], 120)
            self.assertEqual(sum(seen), st["batches"] * 0 + sum(seen))
            self.assertGreaterEqual(st["batches"], 1)
            self.assertLessEqual(st["batches"], 120)
            with self.assertRaises(ds.ShapeError):
                b.submit(np.zeros(5, np.float32))

    def test_handler_error_and_inplace(self):
        def bad(x):
            raise RuntimeError("boom")

        def inplace(x, out):
            out[:] = x[:, :2]

        with new_context() as ctx:
            with ds.Batcher(ctx, bad, (2,), (2,)) as b:
                with self.assertRaises(ds.InternalError) as cm:
                    b(np.ones(2, np.float32), timeout=60)
                self.assertIn("boom", str(cm.exception))
            with ds.Batcher(ctx, inplace, (3,), (2,), inplace=True) as b:
                r = b.submit(np.float32([1, 2, 3]))
                np.testing.assert_array_equal(r.result(60), [1, 2])
                kept = b.submit(np.float32([4, 5, 6]))  # never released by the test
        np.testing.assert_array_equal(kept.output, [4, 5])  # drained at close
        self.assertEqual(kept.status, 0)
        r.release()


class GemmConvertTest(unittest.TestCase):
    def test_gemm_numpy(self):
        with new_context() as ctx:
            a = RNG.standard_normal((33, 17)).astype(np.float32)
            b = RNG.standard_normal((17, 9)).astype(np.float32)
            np.testing.assert_allclose(ds.gemm(ctx, a, b), a @ b, rtol=1e-4, atol=1e-4)
            np.testing.assert_allclose(ds.gemm(ctx, a.T.copy(), b, trans_a=True), a @ b,
                                       rtol=1e-4, atol=1e-4)
            c = np.ones((33, 9), np.float32)
            ds.gemm(ctx, a, b.T.copy(), c=c, trans_b=True, alpha=2, beta=1)
            np.testing.assert_allclose(c, 2 * (a @ b) + 1, rtol=1e-4, atol=1e-4)
            # fp16 operands: fp32 accumulation of the fp16-rounded inputs
            a16, b16 = a.astype(np.float16), b.astype(np.float16)
            ref = a16.astype(np.float32) @ b16.astype(np.float32)
            np.testing.assert_allclose(ds.gemm(ctx, a16, b16), ref, rtol=1e-3, atol=1e-3)
            with self.assertRaises(ds.DtypeError):
                ds.gemm(ctx, a.astype(np.float64), b)

    def test_convert(self):
        with new_context() as ctx:
            x = RNG.standard_normal(1000).astype(np.float32) * 1000
            np.testing.assert_array_equal(ds.convert(ctx, x, "f16"), x.astype(np.float16))
            bf = ds.convert(ctx, x, "bf16")
            self.assertEqual(bf.dtype, np.uint16)
            back = ds.convert(ctx, bf, "f32", src_dtype="bf16")
            np.testing.assert_allclose(back, x, rtol=2 ** -8)
            if torch is not None:
                ref = torch.from_numpy(x).to(torch.bfloat16).view(torch.int16).numpy()
                np.testing.assert_array_equal(bf, ref.view(np.uint16))

    def test_kernels(self):
        with new_context() as ctx:
            x = RNG.standard_normal((5, 7)).astype(np.float32)
            e = np.exp(x - x.max(axis=1, keepdims=True))
            np.testing.assert_allclose(P.softmax(ctx, x), e / e.sum(1, keepdims=True),
                                       rtol=1e-5)
            y, mean, rstd = P.layernorm(ctx, x)
            np.testing.assert_allclose(y.mean(1), 0, atol=1e-5)
            labels = np.array([0, 1, 2, 3, 4])
            loss, d = P.cross_entropy(ctx, x, labels)
            lse = np.log(np.exp(x).sum(1))
            self.assertAlmostEqual(loss, float((lse - x[range(5), labels]).mean()), places=5)
            self.assertEqual(d.shape, x.shape)
            with self.assertRaises(ds.InvalidArgError):
                P.cross_entropy(ctx, x, [0, 1, 2, 3, 99])
            self.assertTrue(P.reduce(ctx, x, "all_finite"))
            self.assertIn(P.isa(ctx), ("scalar", "avx2", "avx512"))

    def test_kernels_16bit(self):
        with new_context() as ctx:
            x = RNG.standard_normal((6, 40)).astype(np.float16)
            e = np.exp(x.astype(np.float64) - x.max(axis=1, keepdims=True))
            ref = e / e.sum(1, keepdims=True)
            y = P.softmax_tensor(ctx, x)
            self.assertEqual(y.dtype, np.float16)
            np.testing.assert_allclose(y.astype(np.float64), ref, rtol=2 ** -11, atol=1e-7)
            y32 = P.softmax_tensor(ctx, x, out_dtype="f32")
            np.testing.assert_allclose(y32, ref, rtol=1e-6)
            bf = ds.convert(ctx, x.astype(np.float32), "bf16")
            loss, d = P.cross_entropy_tensor(ctx, ds.Tensor.from_numpy(bf, "bf16"),
                                             [0, 1, 2, 3, 4, 5], grad_dtype="f32")
            xb = ds.convert(ctx, bf, "f32", src_dtype="bf16").astype(np.float64)
            lse = np.log(np.exp(xb).sum(1))
            self.assertAlmostEqual(loss, float((lse - xb[range(6), range(6)]).mean()), places=5)
            self.assertEqual(d.dtype, np.float32)
            with self.assertRaises(ds.ShapeError):
                P.cross_entropy_tensor(ctx, x, [0, 1])


@unittest.skipIf(torch is None, "torch not importable: DLPack tests skipped")
class DLPackTest(unittest.TestCase):
    def test_export_to_torch_zero_copy(self):
        arr = np.arange(12, dtype=np.float32).reshape(3, 4)
        t = torch.utils.dlpack.from_dlpack(ds.Tensor.from_numpy(arr).to_dlpack())
        self.assertEqual(t.data_ptr(), arr.ctypes.data)
        t[1, 2] = -1.0
        self.assertEqual(arr[1, 2], -1.0)
        t2 = torch.from_dlpack(ds.Tensor.from_numpy(arr[:, 1:3]))  # strided view, __dlpack__
        self.assertEqual(t2.stride(), (4, 1))
        del t, t2
        self.assertEqual(len(DSTENSOR._exports), 0)  # deleters ran, owners released
        ds.Tensor.from_numpy(arr).to_dlpack()  # never consumed: the capsule frees it
        self.assertEqual(len(DSTENSOR._exports), 0)

    def test_import_from_torch_zero_copy(self):
        with new_context() as ctx:
            a = torch.randn(16, 8)
            b = torch.randn(8, 4)
            c = torch.zeros(16, 4)
            ds.gemm(ctx, a, b, c=c)  # written straight into the torch tensor's memory
            torch.testing.assert_close(c, a @ b, rtol=1e-4, atol=1e-4)
            ta = ds.Tensor.from_dlpack(a)
            self.assertEqual(ta.data_ptr, a.data_ptr())
            self.assertEqual(ta.shape, (16, 8))
            view = ta.numpy()
            view[0, 0] = 42.0
            self.assertEqual(float(a[0, 0]), 42.0)
            ta.close()
            # bf16 torch tensors keep their dtype through DLPack
            a16, b16 = a.to(torch.bfloat16), b.to(torch.bfloat16)
            self.assertEqual(ds.tensor(a16).dtype, "bf16")
            out = ds.gemm(ctx, a16, b16)
            ref = (a16.float() @ b16.float()).numpy()
            np.testing.assert_allclose(out, ref, rtol=1e-3, atol=1e-3)
            dst = torch.empty(16, 8, dtype=torch.float16)
            ds.convert_tensor(ctx, dst, a)
            torch.testing.assert_close(dst, a.to(torch.float16), rtol=0, atol=0)


class PolicyScalerOptimizerTest(unittest.TestCase):
    def test_seed_policy_literally(self):
        with new_context() as ctx:
            pol = ds.DynamicPrecision(ctx, fp16_layers=["attention", "ffn"],
                                      bf16_layers=["embedding"], fallback_threshold=0.95,
                                      check_interval=1, demote_after=2)
            self.assertEqual(pol.dtype("attention"), "f16")
            self.assertEqual(pol.dtype("ffn"), "f16")
            self.assertIn(pol.dtype("embedding"), ("bf16", "f32"))
            self.assertEqual(pol.dtype("head"), "f32")
            shadow = np.ones(64, np.float32)
            low = np.full(64, np.nan, np.float16)
            new, score = pol.observe("attention", 1, low, shadow)
            self.assertLess(score, 0.95)
            self.assertNotEqual(new, "f16")
            self.assertEqual(pol.history("attention")[0]["from"], "f16")
            self.assertEqual(pol.layer("attention")["switches"], 1)

    def test_scaler_and_optimizer(self):
        with new_context() as ctx:
            s = ds.LossScaler(ctx, init_scale=1024.0, growth_interval=2)
            g, inf = s.unscale(np.float32([1024, 2048]))
            np.testing.assert_array_equal(g, [1, 2])
            self.assertFalse(inf)
            self.assertFalse(s.update())
            _, inf = s.unscale(np.float32([np.inf]))
            self.assertTrue(inf)
            self.assertTrue(s.update())
            self.assertEqual(s.scale, 512.0)
            o = ds.Optimizer(ctx, "sgd", lr=0.5, momentum=0.0)
            o.add_param("w", np.ones(4, np.float32), "bf16")
            o.step("w", np.ones(4, np.float32))
            np.testing.assert_array_equal(o.master("w"), 0.5)
            self.assertEqual(o.working("w").dtype, np.uint16)
            self.assertGreater(o.memory()["total_bytes"], 0)

    def test_split_master_bf16_state_scaled_step(self):
        with new_context() as ctx:
            o = ds.Optimizer(ctx, "sgd", lr=0.5, momentum=0.0, state_dtype="bf16",
                             split_master=True)
            o.add_param("w", np.ones(4, np.float32), "bf16")
            # a float16 gradient of a loss scaled by 8: the update unscales it
            o.step("w", np.full(4, 8.0, np.float16), scale=8.0)
            np.testing.assert_array_equal(o.master_copy("w"), 0.5)
            np.testing.assert_array_equal(o.working("w"), 0x3f00)  # bf16 0.5
            with self.assertRaises(ds.UnsupportedError):
                o.master("w")
            m = o.memory()
            self.assertEqual(m["working_bytes"], 0)
            self.assertEqual(m["bf16_bytes"], 16)  # high planes 8 + state 8
            self.assertEqual(m["low16_bytes"], 8)
            self.assertEqual(m["total_bytes"], 24)
            self.assertEqual(m["fp32_equivalent"], 32)

    def test_step_linear_matches_whole_gradient(self):
        with new_context() as ctx:
            rng = np.random.default_rng(3)
            w0 = rng.standard_normal((40, 30)).astype(np.float32)
            dy = rng.standard_normal((16, 40)).astype(np.float32)
            x = rng.standard_normal((16, 30)).astype(np.float32)
            a, b, c = (ds.Optimizer(ctx, "sgd", lr=0.1) for _ in range(3))
            for o in (a, b, c):
                o.add_param("w", w0)
            a.step_linear("w", dy, x, tile_rows=7)
            b.step("w", ds.gemm(ctx, dy, x, trans_a=True))
            c.step_linear("w", dy, x)  # default tile: all 40 rows, the same product
            np.testing.assert_array_equal(c.master_copy("w"), b.master_copy("w"))
            # 7-row products: OpenBLAS may round a row differently than in the 40-row one
            np.testing.assert_allclose(a.master_copy("w"), b.master_copy("w"), rtol=0,
                                       atol=1e-6)
            self.assertEqual(a.memory()["scratch_bytes"], 7 * 30 * 4)
            self.assertEqual(b.memory()["scratch_bytes"], 0)
            with self.assertRaises(ds.ShapeError):
                a.step_linear("w", dy, x[:, :29])


class PredictorTest(unittest.TestCase):
    def test_evaluate_save_load(self):
        with new_context() as ctx:
            p = ds.Predictor(ctx, nfeatures=2, window=8, hidden=8, horizons=3)
            t = np.arange(400, dtype=np.float32)
            series = np.stack([0.5 + 0.4 * np.sin(t / 10), 0.5 + 0.4 * np.cos(t / 10)], 1)
            rep = p.train([series[:300]], [series[300:]], max_epochs=2, windows_per_epoch=256)
            self.assertGreaterEqual(rep["epochs"], 1)
            values, probs = p.evaluate(series[300:])
            self.assertEqual(values.shape, (100 - 7, 3))
            self.assertTrue(np.all((probs >= 0) & (probs <= 1)))
            # a trained predictor beats "no change" on this smooth series... at least it is
            # finite and near the data's range
            self.assertTrue(np.all(np.isfinite(values)))
            q = ds.Predictor.from_bytes(ctx, p.to_bytes())
            np.testing.assert_array_equal(q.forward(series[:8])[0], p.forward(series[:8])[0])
            with self.assertRaises(ds.FormatError):
                ds.Predictor.from_bytes(ctx, b"not a model")
            with self.assertRaises(ValueError):
                p.forward(series[:5])


class SchedTest(unittest.TestCase):
    def test_tasks_priorities_and_errors(self):
        with new_context() as ctx:
            order = []
            a = ds.sched.submit(ctx, lambda: order.append("a"), prio="low")
            b = ds.sched.submit(ctx, lambda: order.append("b"), deps=[a])
            self.assertTrue(b.wait(60))
            self.assertEqual(order, ["a", "b"])

            def fail():
                raise ValueError("bad")

            f = ds.sched.submit(ctx, fail, prio="urgent")
            with self.assertRaises(ds.InternalError):
                f.wait(60)
            g = ds.sched.submit(ctx, lambda: None, deps=[f])
            with self.assertRaises(ds.CancelledError):
                g.wait(60)
            self.assertEqual(ds.sched.workers(ctx), 2)
            for t in (a, b, f, g):
                t.release()
            kept = ds.sched.submit(ctx, lambda: None)
        kept.release()  # released by the context's close already: harmless

    def test_submit_batch(self):
        import ctypes
        from deepseek._lib import TASK_DONE_FN, TASK_FN, TaskOptions, lib
        with new_context() as ctx:
            hits = []
            lock = threading.Lock()

            def run(arg):
                with lock:
                    hits.append(arg)
                return 0

            body = TASK_FN(run)
            g = ds.sched.TaskGroup(ctx)
            args = (ctypes.c_void_p * 5)(*range(1, 6))
            o = TaskOptions(ctypes.sizeof(TaskOptions), 1, None, None, 0, g.handle, TASK_DONE_FN(),
                            None, 0, 0, -1, -1, None)
            n = ctypes.c_size_t(99)
            st = lib.ds_task_submit_batch(ctypes.byref(n), ctx.handle, body, args, 5, ctypes.byref(o))
            self.assertEqual(st, 0)
            self.assertEqual(n.value, 5)
            g.wait(60)
            self.assertEqual(sorted(hits), [1, 2, 3, 4, 5])
            self.assertNotEqual(lib.ds_task_submit_batch(None, ctx.handle, TASK_FN(), args, 5, None), 0)
            g.close()


if __name__ == "__main__":
    unittest.main(verbosity=2)
