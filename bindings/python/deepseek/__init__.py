"""Python bindings of libdeepseek (ctypes over libdeepseek.so).

    import deepseek as ds
    with ds.Context(name="demo") as ctx:
        c = ds.gemm(ctx, a, b)                 # NumPy, torch (DLPack) or ds.Tensor operands
        cache = ds.Cache(ctx, l1_bytes=1 << 20)
        cache.put_array("w", a); cache.get_array("w")
        ds.fabric.devices(ctx)                 # compute fabric: devices, ds.Buffer, ds.Barrier
        ds.Graph(ctx)                          # task graphs of ds.Kernel nodes, ds.Plan
        ds.Mpi(ctx)                            # MPI transport (under mpirun): ranks, tasks

Errors raise a DeepseekError subclass per ds_status (ds.ShapeError, ds.NotFoundError, ...).
Set DEEPSEEK_LIBRARY to the .so to use a particular build.
"""

from ._lib import PROTOTYPES, UNBOUND, lib
from .batch import Batcher, Request
from .cache import Cache
from .context import (Context, build_features, build_summary, param_info, param_number,
                      stats_dir, stats_file_read, version)
from .errors import *  # noqa: F401,F403 - one class per ds_status
from .errors import BY_STATUS, DeepseekError, check
from .fabric import Barrier, Buffer, ReplicaState
from .graph import Graph, Kernel, Plan
from .mpi import Mpi, MpiTask
from .precision import (DynamicPrecision, LossScaler, Optimizer, convert, convert_tensor, gemm,
                        stability_score)
from . import fabric, graph, mpi, precision, sched
from .predict import Predictor
from .tensor import DTYPES, Tensor, tensor

__version__ = version()
