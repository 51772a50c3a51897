"""Tests of the compute fabric's bindings (deepseek.fabric): devices, buffers, events and
timestamp barriers. Imported by test_bindings.py (so the ctest `python_bindings` runs them);
also runnable alone."""

import gc
import os
import sys
import threading
import time
import unittest

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import deepseek as ds  # noqa: E402
from deepseek import fabric as F  # noqa: E402


def fabric_context():
    return ds.Context(name="pyfabric", no_env=True, log_level=ds.context.LOG_ERROR,
                      params={"sched_workers": 2, "stats_file": 0, "telemetry_enable": 0})


class FabricDevicesTest(unittest.TestCase):
    def test_devices_listed(self):
        with fabric_context() as ctx:
            devs = F.devices(ctx)
            self.assertGreaterEqual(len(devs), 1)
            self.assertEqual(len(devs), F.device_count(ctx))
            self.assertEqual(F.memory_space_count(ctx), len(devs))
            cpu = devs[0]
            self.assertEqual(cpu.index, 0)
            self.assertEqual(cpu.kind, F.CPU)
            self.assertEqual(cpu.kind_name, "cpu")
            self.assertTrue(cpu.is_host)
            self.assertIn("host_memory", cpu.capabilities)
            self.assertEqual(cpu.backend, "cpu")
            self.assertTrue(cpu.name.startswith("cpu"), cpu.name)
            self.assertEqual(F.find_device(ctx, "cpu"), 0)
            self.assertEqual(F.find_device(ctx, F.CPU), 0)
            self.assertEqual(sorted(d.memory_space for d in devs), list(range(len(devs))))
            self.assertEqual([d.index for d in devs], list(range(len(devs))))
            self.assertIsNone(F.find_device(ctx, "cuda", 1000))
            with self.assertRaises(ds.NotFoundError):
                F.device(ctx, len(devs) + 100)
            with self.assertRaises(ValueError):
                F.find_device(ctx, "tpu")


class FabricBufferTest(unittest.TestCase):
    def test_register_numpy_zero_copy(self):
        with fabric_context() as ctx:
            a = np.zeros((16, 16), dtype=np.float32)
            with ds.Buffer.register(ctx, a, name="weights") as buf:
                self.assertEqual(buf.name, "weights")
                self.assertEqual(buf.size, a.nbytes)
                self.assertIs(buf.array, a)
                self.assertEqual(buf.state(0), ds.ReplicaState.MODIFIED)
                acc = buf.acquire(0, "w")
                self.assertEqual(acc.pointer, a.ctypes.data)  # the array's own bytes
                with acc as view:
                    self.assertEqual(view.shape, a.shape)
                    self.assertEqual(view.dtype, a.dtype)
                    view[:] = np.arange(256, dtype=np.float32).reshape(16, 16)
                self.assertTrue(acc.released)
                np.testing.assert_array_equal(a.ravel(), np.arange(256, dtype=np.float32))
                with buf.acquire(0, "r") as view:
                    self.assertFalse(view.flags.writeable)
                    self.assertEqual(float(view[3, 4]), 52.0)
                self.assertEqual(buf.state(0), ds.ReplicaState.MODIFIED)
            self.assertIsNone(buf.array)

    def test_registered_array_kept_alive(self):
        with fabric_context() as ctx:
            buf = ds.Buffer.register(ctx, np.full(4096, 5, dtype=np.int64))
            gc.collect()  # the only reference to the array is the buffer's
            junk = [np.full(4096, -1, dtype=np.int64) for _ in range(8)]
            with buf.acquire(0, "r") as v:
                self.assertTrue(bool((v == 5).all()))
            del junk
            buf.close()

    def test_created_buffer_views(self):
        with fabric_context() as ctx:
            with ds.Buffer(ctx, 64) as buf:
                self.assertEqual(buf.name, "buffer")
                with buf.acquire(0, "rw", dtype=np.int32, shape=(4, 4)) as v:
                    self.assertEqual(int(v.sum()), 0)  # zero-filled
                    v[:] = 7
                cpu = F.device(ctx, 0)
                self.assertEqual(buf.state(cpu), ds.ReplicaState.MODIFIED)
                with buf.acquire(cpu, ds.fabric.READ) as raw:
                    self.assertEqual(raw.dtype, np.uint8)
                    self.assertEqual(raw.shape, (64,))
                    self.assertEqual(bytes(raw[:4]), b"\x07\x00\x00\x00")

    def test_bad_input(self):
        with fabric_context() as ctx:
            with self.assertRaises(ds.InvalidArgError):
                ds.Buffer(ctx, 0)
            with self.assertRaises(ValueError):
                ds.Buffer.register(ctx, np.zeros((8, 8))[:, ::2])
            with self.assertRaises(TypeError):
                ds.Buffer.register(ctx, bytearray(8))
            with self.assertRaises(ds.InvalidArgError):
                ds.Buffer.register(ctx, np.zeros(0, dtype=np.float32))
            with self.assertRaises(ds.InvalidArgError):  # home device must be a CPU
                ds.Buffer(ctx, 16, home_device=F.device_count(ctx) + 5)
            buf = ds.Buffer(ctx, 32, name="bad")
            with self.assertRaises(ds.NotFoundError) as cm:
                buf.acquire(F.device_count(ctx) + 3, "r")
            self.assertIn("'bad'", str(cm.exception))  # the library's detail names the buffer
            with self.assertRaises(ValueError):
                buf.acquire(0, "x")
            with self.assertRaises(ds.NotFoundError):
                buf.state(99)
            with self.assertRaises(ValueError):  # 32 bytes are not a whole (3,) float64s
                buf.acquire(0, "rw", dtype=np.float64, shape=(3,))
            w = buf.acquire(0, "w")  # the failed acquire above was undone
            with self.assertRaises(ds.BusyError) as cm:
                buf.acquire(0, "r")
            self.assertIn("bad", str(cm.exception))  # messages name the buffer
            w.release()
            w.release()  # harmless twice
            with self.assertRaises(ds.StateError):  # no acquire outstanding
                ctx.check(ds.lib.ds_buffer_release(buf.handle, 0))
            # An acquire still outstanding is released by close(), which then succeeds.
            buf.acquire(0, "r")
            buf.close()
            with self.assertRaises(ds.DeepseekError):
                buf.size
            # ... and so by the context's close.
            b2 = ds.Buffer(ctx, 8)
            b2.acquire(0, "rw")

    def test_concurrent_readers(self):
        with fabric_context() as ctx:
            a = np.arange(512, dtype=np.int32)
            devs = [d.index for d in F.devices(ctx)]
            with ds.Buffer.register(ctx, a, name="shared") as buf:
                errors = []

                def reader(k):
                    try:
                        for i in range(100):
                            dev = devs[(i + k) % len(devs)]
                            with buf.acquire(dev, "r") as v:
                                if dev == 0 and int(v[511]) != 511:
                                    errors.append(("value", int(v[511])))
                    except Exception as e:  # reported below
                        errors.append(e)

                ths = [threading.Thread(target=reader, args=(k,)) for k in range(4)]
                for th in ths:
                    th.start()
                for th in ths:
                    th.join(120)
                self.assertEqual(errors, [])
                self.assertEqual(buf._outstanding, [])
                with buf.acquire(0, "w") as v:  # exclusive again: every read was released
                    v[:] = 0
                self.assertEqual(int(a.sum()), 0)

    def test_device_mask(self):
        with fabric_context() as ctx:
            n = F.device_count(ctx)
            if n < 2:
                self.skipTest("one device only: device_mask needs two")
            with ds.Buffer(ctx, 16, device_mask=0x1) as buf:
                with self.assertRaises(ds.UnsupportedError):
                    buf.acquire(1, "r")

    def test_opencl_state_transitions(self):
        self._device_state_transitions("opencl")

    def test_cuda_state_transitions(self):
        self._device_state_transitions("cuda")

    def _device_state_transitions(self, kind):
        with fabric_context() as ctx:
            idx = F.find_device(ctx, kind)
            if idx is None:
                if kind == "cuda" and os.environ.get("DS_REQUIRE_GPU") == "1":
                    self.fail("DS_REQUIRE_GPU=1 but no CUDA device in the fabric")
                print("\n[test_fabric] no %s device: state transitions on it skipped" % kind,
                      file=sys.stderr)
                self.skipTest("no %s device" % kind)
            dev = F.device(ctx, idx)
            self.assertEqual(dev.kind_name, kind)
            ocl = idx
            self.assertFalse(dev.is_host)
            a = np.arange(1024, dtype=np.float32)
            with ds.Buffer.register(ctx, a, name="ocl") as buf:
                self.assertEqual(buf.state(ocl), ds.ReplicaState.INVALID)
                with buf.acquire(ocl, "r") as handle:
                    self.assertIsInstance(handle, int)
                    self.assertNotEqual(handle, 0)  # a cl_mem
                self.assertEqual(buf.state(0), ds.ReplicaState.SHARED)
                self.assertEqual(buf.state(ocl), ds.ReplicaState.SHARED)
                with buf.acquire(ocl, "w"):
                    pass
                self.assertEqual(buf.state(ocl), ds.ReplicaState.MODIFIED)
                self.assertEqual(buf.state(0), ds.ReplicaState.INVALID)
                with buf.acquire(0, "r", asynchronous=True) as view:
                    self.assertEqual(view.shape, (1024,))
                self.assertEqual(buf.state(0), ds.ReplicaState.SHARED)
                self.assertEqual(buf.state(ocl), ds.ReplicaState.SHARED)
                with buf.acquire(0, "w") as view:
                    view[:] = 3.0
                self.assertEqual(buf.state(ocl), ds.ReplicaState.INVALID)
                acc = buf.acquire_async(ocl, "r")
                self.assertTrue(acc.event is None or isinstance(acc.event, F.Event))
                self.assertEqual(acc.wait(), acc.pointer)
                self.assertTrue(acc.event is None or acc.event.done)
                acc.release()
                self.assertEqual(buf.state(ocl), ds.ReplicaState.SHARED)
            stats = ctx.stats()
            self.assertIn("fabric.copies_avoided", stats)
            self.assertIn("fabric.bytes_moved", stats)


class FabricBarrierTest(unittest.TestCase):
    def test_publish_wait_two_threads(self):
        with fabric_context() as ctx:
            with ds.Barrier(ctx, participants=2, name="pair") as b:
                seen = []

                def worker():
                    for t in range(1, 6):
                        b.publish(1, t)
                        b.wait(t, timeout=60)
                        seen.append(t)

                th = threading.Thread(target=worker)
                th.start()
                for t in range(1, 6):
                    time.sleep(0.002)
                    b.publish(0, t)
                    b.wait(t, timeout=60)
                th.join(60)
                self.assertFalse(th.is_alive())
                self.assertEqual(seen, [1, 2, 3, 4, 5])
                self.assertEqual(b.progress(), 5)
                self.assertEqual(b.progress(0), 5)

    def test_arrive_and_wait_phases(self):
        with fabric_context() as ctx:
            with ds.Barrier(ctx, participants=2) as b:
                phases = {0: [], 1: []}
                shared = []
                errors = []

                def run(p):
                    try:
                        for i in range(20):
                            if p == 0:
                                shared.append(i)
                            ph = b.arrive_and_wait(p, timeout=60)
                            phases[p].append(ph)
                            # Everything participant 0 wrote before arriving is visible.
                            if len(shared) < i + 1:
                                errors.append((p, i, len(shared)))
                            b.arrive_and_wait(p, timeout=60)
                    except Exception as e:  # reported below
                        errors.append(e)

                ths = [threading.Thread(target=run, args=(p,)) for p in (0, 1)]
                for th in ths:
                    th.start()
                for th in ths:
                    th.join(60)
                self.assertEqual(errors, [])
                self.assertEqual(phases[0], list(range(1, 41, 2)))
                self.assertEqual(phases[1], list(range(1, 41, 2)))

    def test_timeout_and_errors(self):
        with fabric_context() as ctx:
            with self.assertRaises(ds.InvalidArgError):
                ds.Barrier(ctx, participants=0)
            b = ds.Barrier(ctx, participants=2, name="slow")
            t0 = time.monotonic()
            with self.assertRaises(ds.DsTimeoutError) as cm:
                b.wait(1, timeout=0.02)
            self.assertIsInstance(cm.exception, ds.DeepseekError)
            self.assertIn("slow", str(cm.exception))
            self.assertGreaterEqual(time.monotonic() - t0, 0.015)
            with self.assertRaises(ds.DsTimeoutError):
                b.wait(1, timeout=0)  # test only
            with self.assertRaises(ValueError):
                b.wait(1, timeout=-1)
            with self.assertRaises(ds.NotFoundError):
                b.publish(2, 1)
            with self.assertRaises(ValueError):  # would wrap to 2**64-1 in C
                b.publish(0, -1)
            with self.assertRaises(ValueError):
                b.progress(-1)
            with self.assertRaises(ds.DsTimeoutError):
                b.wait(1, timeout=0.0)
            b.publish(0, 5)
            with self.assertRaises(ds.InvalidArgError):  # timestamps never go backwards
                b.publish(0, 4)
            b.publish(0, 5)  # the same again is allowed
            self.assertEqual(b.progress(0), 5)
            self.assertEqual(b.progress(), 0)
            b.wait(0, timeout=0)  # everyone has passed 0
            # A waiter blocked in C is woken by cancel with ShutdownError.
            out = []

            def waiter():
                try:
                    b.wait(100)
                except ds.DeepseekError as e:
                    out.append(type(e))

            th = threading.Thread(target=waiter)
            th.start()
            time.sleep(0.02)
            b.cancel()
            th.join(60)
            self.assertEqual(out, [ds.ShutdownError])
            with self.assertRaises(ds.ShutdownError):
                b.publish(1, 1)
            b.close()
            b.close()

    def test_device_participants_without_devices(self):
        with fabric_context() as ctx:
            with ds.Barrier(ctx, participants=1) as b:
                with self.assertRaises((ds.InvalidArgError, ds.UnsupportedError)):
                    b.publish_opencl(0, None, 1)  # no queue
                with self.assertRaises(TypeError):
                    b.wait_cuda(object(), 1)
                if F.find_device(ctx, "cuda") is None:
                    with self.assertRaises((ds.UnavailableError, ds.UnsupportedError)):
                        b.publish_cuda(0, None, 1)
                    with self.assertRaises((ds.UnavailableError, ds.UnsupportedError)):
                        b.wait_cuda(None, 1)
                else:  # the legacy default stream (None) publishes when it reaches the mark
                    b.publish_cuda(0, None, 1)
                    b.wait(1, timeout=60)
                    self.assertEqual(b.progress(0), 1)


if __name__ == "__main__":
    unittest.main(verbosity=2)
