#!/usr/bin/python3
"""Checks bench/predict_headroom.py on synthetic machine_usage files whose answer is known:
- cpu% driven by net_in 10 steps earlier (plus noise): the pooled LAD model must find the
  headroom (MAE far under the best baseline at horizons 5 and 10);
- cpu% a random walk with no other signal: it must find none (within a few percent of the best
  baseline), so the diagnostic does not invent headroom."""
import contextlib
import io
import json
import os
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "bench"))
import predict_headroom  # noqa: E402


def write_trace(path, driven, seed):
    rng = np.random.default_rng(seed)
    with open(path, "w") as f:
        for m in range(3):
            n = 4000
            net, walk = np.empty(n), np.empty(n)
            net[0] = walk[0] = 50.0
            for t in range(1, n):  # slowly mean-reverting, so neither sticks at 0 or 100
                net[t] = 50 + 0.97 * (net[t - 1] - 50) + rng.normal(0, 4)
                walk[t] = 50 + 0.998 * (walk[t - 1] - 50) + rng.normal(0, 2)
            net, walk = np.clip(net, 0, 100), np.clip(walk, 0, 100)
            for t in range(n):
                if driven:
                    cpu = net[t - 10] if t >= 10 else 50.0
                    cpu = min(max(cpu + rng.normal(0, 1), 0), 100)
                else:
                    cpu = walk[t]
                if rng.random() < 0.2:
                    continue  # missing samples, as in the real file
                f.write("m_%d,%d,%.2f,50,,,%.2f,%.2f,5\n" % (m, t * 60, cpu, net[t], net[t]))


def run(path):
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        rc = predict_headroom.main([path, "--json"])
    assert rc == 0, rc
    rows = [json.loads(x) for x in out.getvalue().splitlines()]
    assert len(rows) == 15, rows
    return {(r["model"], r["horizon"]): r["vs_best_baseline"] for r in rows}


def main():
    with tempfile.TemporaryDirectory() as d:
        p = os.path.join(d, "driven.csv")
        write_trace(p, True, 1)
        r = run(p)
        for h in (5, 10):
            assert r[("lad_pool", h)] < 0.6, ("driven", h, r)
        p = os.path.join(d, "walk.csv")
        write_trace(p, False, 2)
        r = run(p)
        for h in (1, 5, 10):
            assert 0.93 < r[("lad_pool", h)] < 1.07, ("walk", h, r)
            assert min(r[(m, h)] for m in ("last", "ewma", "ar16")) == 1.0, r
    print("predict_headroom OK")


if __name__ == "__main__":
    main()
