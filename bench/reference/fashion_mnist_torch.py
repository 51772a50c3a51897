#!/usr/bin/python3
"""PyTorch reference for examples/train_fashion_mnist: the same MLP (784-512-256-10, ReLU,
He-normal weights, zero biases), the same normalisation ((x/255 - 0.286) / 0.353), SGD lr 0.01
momentum 0.9, batch 64, 2 epochs, in fp32 and under bf16 autocast, with 2 threads.

    /usr/bin/python3 bench/reference/fashion_mnist_torch.py [--epochs N] [--threads N]
    /usr/bin/python3 bench/reference/fashion_mnist_torch.py --ours build/examples/train_fashion_mnist [--json]

With --ours it also runs our trainer (fp32, and --mixed: bf16 hidden layers) and prints bench
rows in the format of bench/bench_common.h: epoch time ratio ours/PyTorch (goals: fp32 <= 1.0,
mixed <= 0.7 against PyTorch's bf16 autocast) and test accuracy. The epoch time is the median
over the epochs of the training loop alone (no evaluation); data are in memory for both (ours
decodes batches in scheduler tasks and caches them; PyTorch gets one pre-normalised tensor).
"""

import argparse
import gzip
import json
import os
import re
import statistics
import subprocess
import sys
import time

import numpy as np

DATA = "/usr/share/datasets/fashion-mnist"


def read_idx(path, ndim):
    with gzip.open(path, "rb") as f:
        raw = f.read()
    magic = int.from_bytes(raw[0:4], "big")
    if magic != 0x800 | ndim:
        raise ValueError("%s: not an IDX file of %d dims" % (path, ndim))
    dims = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def load(data, prefix):
    x = read_idx(os.path.join(data, "%s-images-idx3-ubyte.gz" % prefix), 3)
    y = read_idx(os.path.join(data, "%s-labels-idx1-ubyte.gz" % prefix), 1)
    x = (x.reshape(len(x), 784).astype(np.float32) / 255.0 - 0.286) / 0.353
    return x, y.astype(np.int64)


def train_torch(mode, xtr, ytr, xte, yte, epochs, batch, lr, seed):
    import torch
    from torch import nn

    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 256), nn.ReLU(),
                          nn.Linear(256, 10))
    for m in model:
        if isinstance(m, nn.Linear):
            nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
            nn.init.zeros_(m.bias)
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    loss_fn = nn.CrossEntropyLoss()
    xtr_t, ytr_t = torch.from_numpy(xtr), torch.from_numpy(ytr)
    xte_t, yte_t = torch.from_numpy(xte), torch.from_numpy(yte)
    gen = np.random.default_rng(seed)
    order = torch.from_numpy(gen.permutation(len(xtr)))  # a fixed shuffle, as ours
    times = []
    for _ in range(epochs):
        t0 = time.perf_counter()
        model.train()
        for i in range(0, len(xtr), batch):
            idx = order[i:i + batch]
            xb, yb = xtr_t[idx], ytr_t[idx]
            opt.zero_grad(set_to_none=True)
            if mode == "bf16":
                with torch.autocast("cpu", dtype=torch.bfloat16):
                    loss = loss_fn(model(xb), yb)
            else:
                loss = loss_fn(model(xb), yb)
            loss.backward()
            opt.step()
        times.append(time.perf_counter() - t0)
    model.eval()
    with torch.no_grad():
        if mode == "bf16":
            with torch.autocast("cpu", dtype=torch.bfloat16):
                pred = model(xte_t).argmax(1)
        else:
            pred = model(xte_t).argmax(1)
    acc = 100.0 * float((pred == yte_t).float().mean())
    return acc, times


def run_ours(binary, data, epochs, mixed, quiet):
    cmd = [binary, "--data", data, "--epochs", str(epochs)] + (["--mixed"] if mixed else [])
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    times = [float(t) for t in re.findall(r"^epoch \d+/\d+ \[#+\] 100% ([0-9.]+)s", out, re.M)]
    acc = float(re.search(r"^test accuracy ([0-9.]+)%", out, re.M).group(1))
    if len(times) != epochs:
        raise RuntimeError("could not read the epoch times of:\n" + out)
    if not quiet:
        print("ours %s: test accuracy %.2f%%, epoch times %s s" % (
            "mixed" if mixed else "fp32", acc, ", ".join("%.2f" % t for t in times)),
            file=sys.stderr, flush=True)
    return acc, times


def row(json_mode, header, case, metric, ours, anchor, anchor_value, goal, better):
    r = {"bench": "main_fashion_mnist", "case": case, "metric": metric, "ours": ours,
         "anchor": anchor, "anchor_value": anchor_value,
         "ratio": round(ours / anchor_value, 4) if anchor_value else 0.0, "goal": goal,
         "better": better}
    if json_mode:
        print(json.dumps(r))
        return header
    if not header:
        print("%-18s %-22s %-12s %12s %-26s %12s %8s %8s" % (
            "bench", "case", "metric", "ours", "anchor", "anchor_val", "ratio", "goal"))
    print("%-18s %-22s %-12s %12.4g %-26s %12.4g %8.3f %6s%.2g" % (
        r["bench"], case, metric, ours, anchor, anchor_value, r["ratio"],
        ">=" if better == "higher" else "<=", goal))
    return True


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=os.environ.get("DS_FASHION_MNIST_DIR", DATA))
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=0.01)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--ours", help="path of train_fashion_mnist: also run it and compare")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    if not os.path.exists(os.path.join(a.data, "train-images-idx3-ubyte.gz")):
        print("SKIP: Fashion-MNIST not found in %s (Debian package dataset-fashion-mnist)"
              % a.data)
        return 0
    try:
        import torch
    except ImportError:
        print("SKIP: torch not importable by %s (Debian package python3-torch)" % sys.executable)
        return 0
    torch.set_num_threads(a.threads)
    xtr, ytr = load(a.data, "train")
    xte, yte = load(a.data, "t10k")
    res = {}
    for mode in ("fp32", "bf16"):
        acc, times = train_torch(mode, xtr, ytr, xte, yte, a.epochs, a.batch, a.lr, a.seed)
        res[mode] = (acc, times)
        if not a.json:  # as soon as it is known (with --ours, on stderr: the table follows)
            print("pytorch %s (%d threads): test accuracy %.2f%%, epoch times %s s (median %.2f)"
                  % (mode, a.threads, acc, ", ".join("%.2f" % t for t in times),
                     statistics.median(times)), file=sys.stderr if a.ours else sys.stdout,
                  flush=True)
    if not a.ours:
        if a.json:
            for mode, (acc, times) in res.items():
                print(json.dumps({"framework": "pytorch", "mode": mode, "threads": a.threads,
                                  "test_accuracy": acc, "epoch_s": times}))
        return 0
    ours = {"fp32": run_ours(a.ours, a.data, a.epochs, False, a.json),
            "mixed": run_ours(a.ours, a.data, a.epochs, True, a.json)}
    h = False
    for case, ref, anchor, goal in (("fp32", "fp32", "pytorch fp32", 1.0),
                                    ("mixed bf16", "bf16", "pytorch bf16 autocast", 0.7)):
        key = "fp32" if case == "fp32" else "mixed"
        h = row(a.json, h, case, "epoch_s", statistics.median(ours[key][1]),
                anchor + " %dt" % a.threads, statistics.median(res[ref][1]), goal, "lower")
        h = row(a.json, h, case, "test_acc_%", ours[key][0], anchor, res[ref][0], 1.0,
                "higher")
    return 0


if __name__ == "__main__":
    sys.exit(main())
