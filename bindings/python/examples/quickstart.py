#!/usr/bin/python3
"""A first program with the Python bindings: a context, a cache of NumPy arrays, GEMM on NumPy
and (if torch is installed) torch tensors without copies, a batcher serving a Python model
to several threads, and the compute fabric (devices, a zero-copy buffer, a barrier, a task
graph).

    DEEPSEEK_LIBRARY=build/src/libdeepseek.so PYTHONPATH=bindings/python \
        /usr/bin/python3 bindings/python/examples/quickstart.py
"""

import threading

import numpy as np

import deepseek as ds

rng = np.random.default_rng(0)
W = rng.standard_normal((16, 4)).astype(np.float32)  # a tiny linear "model"

# One context holds everything; `with` closes it (and whatever was made from it).
with ds.Context(name="quickstart", params={"sched_workers": 2}) as ctx:
    print("libdeepseek", ds.__version__, "|", ds.build_summary())

    # GEMM on NumPy arrays: fp32 accumulation, also for fp16 operands.
    x = rng.standard_normal((8, 16)).astype(np.float32)
    y = ds.gemm(ctx, x, W)
    print("gemm max |error| vs NumPy:", float(np.abs(y - x @ W).max()))

    # A cache with a compressed second tier; arrays come back with dtype and shape.
    with ds.Cache(ctx, l1_bytes=1 << 20, l2_bytes=8 << 20, codec="zstd") as cache:
        cache.put_array("weights", W)
        assert np.array_equal(cache.get_array("weights"), W)
        print("cache L1:", cache.stats("l1")["entries"], "entries")

    # Errors are exceptions, one class per status, with the library's detail.
    try:
        ds.gemm(ctx, x, x)
    except ds.ShapeError as e:
        print("expected error:", e)

    # The batcher groups requests from many threads into batches for one handler.
    def model(batch):  # batch: [rows, 16] -> [rows, 4]
        return batch @ W

    with ds.Batcher(ctx, model, input_shape=(16,), output_shape=(4,), max_batch_size=16,
                    max_queue_delay_us=1000) as batcher:
        def client():
            for _ in range(50):
                v = rng.standard_normal(16).astype(np.float32)
                assert np.allclose(batcher(v), v @ W, atol=1e-4)

        threads = [threading.Thread(target=client) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        s = batcher.stats()
        print("batcher: %d requests in %d batches, p99 latency %.0f us"
              % (s["completed"], s["batches"], s["latency_p99_us"]))

    # The compute fabric: the devices present, and a NumPy array registered as a buffer
    # without copying; acquiring it on a CPU device gives a NumPy view of the same bytes.
    for d in ds.fabric.devices(ctx):
        print("fabric device %d: %s (%s)" % (d.index, d.name, d.kind_name))
    data = np.zeros(1024, dtype=np.float32)
    with ds.Buffer.register(ctx, data, name="data") as buf:
        with buf.acquire(0, "w") as view:  # released at the end of the block
            view[:] = 2.0
        assert data[0] == 2.0  # the array's own memory was written
        ocl = ds.fabric.find_device(ctx, "opencl")  # PoCL exposes the CPU as one
        if ocl is not None:
            with buf.acquire(ocl, "r") as cl_mem:  # an OpenCL kernel would read cl_mem
                print("on OpenCL: handle 0x%x, states host=%s device=%s"
                      % (cl_mem, buf.state(0).name, buf.state(ocl).name))

    # Timestamp barriers: each participant publishes its progress; wait(t) returns once all
    # have passed t (here a worker thread and this one, three phases).
    with ds.Barrier(ctx, participants=2) as bar:
        worker = threading.Thread(target=lambda: [bar.arrive_and_wait(1) for _ in range(3)])
        worker.start()
        phases = [bar.arrive_and_wait(0, timeout=30) for _ in range(3)]
        worker.join()
        print("barrier phases:", phases)

    # A task graph: a kernel with a Python (NumPy) CPU implementation and an OpenCL C one;
    # the accesses give the order (the second node reads what the first wrote) and the plan
    # (HEFT by default) places each node on a device. Python kernels serialize on the GIL.
    def axpy(views, args):  # views: the node's buffers in access order, as float32
        x, y = views
        y += float(np.frombuffer(args, np.float32)[0]) * x

    axpy_cl = ("__kernel void axpy(__global const float *x, __global float *y, float a) {"
               " int i = get_global_id(0); y[i] += a * x[i]; }")
    k = ds.Kernel(ctx, "quickstart_axpy", cpu=axpy, dtypes=np.float32,
                  opencl_source=axpy_cl, opencl_name="axpy", opencl_arg_sizes=[4])
    xs, ys = np.arange(256, dtype=np.float32), np.zeros(256, dtype=np.float32)
    with ds.Buffer.register(ctx, xs) as bx, ds.Buffer.register(ctx, ys) as by, \
            ds.Graph(ctx) as g:
        for _ in range(2):  # y += 2x, twice
            g.add(k, [(bx, "r"), (by, "rw")], args=np.float32(2.0), global_size=(256,))
        with g.plan() as plan:
            run = plan.run()
            print("graph: nodes on devices %s, predicted %.2f ms, ran %.2f ms"
                  % (plan.devices, plan.info().makespan_s * 1e3, run.makespan_s * 1e3))
        with by.acquire(0, "r") as y:  # brings the host bytes up to date
            assert np.array_equal(y, 4 * xs)

    # Zero-copy with torch through DLPack (skipped without torch).
    try:
        import torch
    except ImportError:
        print("torch not installed: DLPack part skipped")
    else:
        a, b = torch.randn(32, 16), torch.randn(16, 8)
        c = torch.empty(32, 8)
        ds.gemm(ctx, a, b, c=c)  # reads a and b and writes c in place
        print("torch gemm max |error|:", float((c - a @ b).abs().max()))
        shared = torch.utils.dlpack.from_dlpack(ds.Tensor.from_numpy(W).to_dlpack())
        print("torch view of a NumPy array shares memory:",
              shared.data_ptr() == W.ctypes.data)
