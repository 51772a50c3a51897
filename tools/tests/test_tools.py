#!/usr/bin/env python3
"""Tests of deepseek-monitor against a live process (ds_tools_demo) in a private stats directory.

usage: test_tools.py monitor|prometheus|trace|tui|tune TOOL DEMO SCRATCH_DIR [OBJECTIVE]
(TOOL is deepseek-monitor, or deepseek-tune for the mode tune, which also takes tune_objective.)
Only 127.0.0.1 is ever bound."""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request

MODE, MONITOR, DEMO, SCRATCH = sys.argv[1:5]
OBJECTIVE = sys.argv[5] if len(sys.argv) > 5 else None


def fail(msg):
    print("FAIL:", msg)
    sys.exit(1)


def check(cond, msg):
    if not cond:
        fail(msg)
    print("ok:", msg)


def env_with(stats_dir):
    env = dict(os.environ)
    env["DS_STATS_DIR"] = stats_dir
    return env


def start_demo(env, seconds=60):
    p = subprocess.Popen([DEMO, "--serve", str(seconds)], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, env=env, text=True)
    line = p.stdout.readline().split()
    if len(line) < 2 or line[0] != "ready":
        p.kill()
        fail("demo did not start: %r" % line)
    return p, int(line[1])


def stop_demo(p):
    p.stdin.close()  # end of file on stdin: the demo destroys its context and exits
    p.wait(timeout=30)


def run(args, env, **kw):
    r = subprocess.run([MONITOR] + args, env=env, capture_output=True, text=True, timeout=60, **kw)
    if "Sanitizer" in r.stderr:
        fail("sanitizer report from %s:\n%s" % (args, r.stderr))
    return r


def wait_until(fn, seconds=10):
    end = time.time() + seconds
    while time.time() < end:
        if fn():
            return True
        time.sleep(0.1)
    return False


def write_stats(path, pid, label, stats, created_ns):
    """A synthetic stats file (the layout src/core/stats_file.c documents): header, then
    {name[64], kind, reserved, value} per stat."""
    import struct
    head = struct.pack("<8sIIIIQIIqqq64s", b"DSSTATS\0", 1, 128, 80, len(stats), 0, len(stats), 0,
                       pid, created_ns, created_ns, label.encode())
    body = b"".join(struct.pack("<64siId", n.encode(), k, 0, v) for n, k, v in stats)
    with open(path, "wb") as f:
        f.write(head + body)
    os.chmod(path, 0o600)


GIB = 1 << 30
GPU_STATS = [("core.uptime_s", 1, 5.0), ("telemetry.gpu0.util_pct", 1, 30.0),
             ("telemetry.gpu0.mem_used_bytes", 1, 1.0 * GIB), ("telemetry.gpu0.mem_total_bytes", 1, 4.0 * GIB),
             ("telemetry.gpu1.util_pct", 1, 70.0), ("telemetry.gpu1.mem_used_bytes", 1, 3.0 * GIB),
             ("telemetry.gpu1.mem_total_bytes", 1, 4.0 * GIB)]


def test_synthetic(env):
    """GPU rows of a synthetic file under this test's own pid, and a stale file of a reused pid."""
    path = os.path.join(env["DS_STATS_DIR"], "%d-7.stats" % os.getpid())
    write_stats(path, os.getpid(), "synthetic", GPU_STATS, time.time_ns())
    r = run(["-p", str(os.getpid()), "--once", "--json"], env)
    snap = json.loads(r.stdout) if r.returncode == 0 else {"stats": {}}
    check(snap["stats"].get("telemetry.gpu1.util_pct") == 70 and
          snap["stats"].get("telemetry.gpu0.mem_total_bytes") == 4 * GIB, "GPU rows in --once --json")
    # the same file created an hour before this process started: left by an earlier process
    # that had this pid, so not this process's
    write_stats(path, os.getpid(), "synthetic", GPU_STATS, time.time_ns() - 3600 * 10**9)
    r = run(["-p", str(os.getpid()), "--once"], env)
    check(r.returncode == 1 and "stale file" in r.stderr and "reused pid" in r.stderr,
          "a stale file of a reused pid is detected: %s" % r.stderr.strip())
    check(str(os.getpid()) not in run(["--list"], env).stdout, "--list skips the stale file")
    os.unlink(path)


def test_monitor(env):
    test_synthetic(env)
    r = run(["--once", "--json"], env)
    check(r.returncode == 1 and "no process" in r.stderr, "no process: says so and fails")
    p, pid = start_demo(env)
    try:
        # the telemetry sampler publishes every 100 ms: wait for the scheduler's count
        def published():
            r = run(["--once", "--json"], env)
            return r.returncode == 0 and json.loads(r.stdout)["stats"].get("sched.tasks_run", 0) >= 25
        check(wait_until(published), "sched.tasks_run reaches 25 in the stats file")
        r = run(["--once", "--json"], env)
        snap = json.loads(r.stdout)
        check(snap["pid"] == pid, "--once --json shows the demo's pid %d" % pid)
        check(snap["label"] == "tools-demo", "label is the context's name")
        check(snap["stats"]["core.uptime_s"] > 0, "core.uptime_s > 0")
        check(snap["kinds"]["sched.tasks_run"] == "counter", "kinds say counter")
        check(snap["stats"]["telemetry.samples"] >= 1, "telemetry.samples >= 1")
        rt = run(["--once"], env)
        check(rt.returncode == 0 and "label tools-demo" in rt.stdout and
              any(l.split()[:2] == ["sched.tasks_run", "counter"] for l in rt.stdout.splitlines()),
              "--once prints a readable table")
        r2 = run(["-p", str(pid), "--once", "--json"], env)
        check(r2.returncode == 0 and json.loads(r2.stdout)["pid"] == pid, "-p PID attaches")
        r3 = run(["-p", "999999999", "--once"], env)
        check(r3.returncode == 1 and "no live process" in r3.stderr, "-p of an unknown pid fails")
        r4 = run(["--list"], env)
        check(str(pid) in r4.stdout and "tools-demo" in r4.stdout, "--list shows the demo")
        # a stale file of a dead pid is skipped
        stale = os.path.join(env["DS_STATS_DIR"], "999999998-1.stats")
        shutil.copy(snap["file"], stale)
        r5 = run(["--once", "--json"], env)
        check(r5.returncode == 0 and json.loads(r5.stdout)["pid"] == pid, "dead pid's file skipped")
        os.unlink(stale)
        # a file of another user's live process (pid 1), or one we do not own, is skipped
        foreign = os.path.join(env["DS_STATS_DIR"], "1-1.stats")
        shutil.copy(snap["file"], foreign)
        if os.geteuid() == 0:
            os.chown(foreign, 65534, 65534)
        r7 = run(["--list"], env)
        r8 = run(["-p", "1", "--once"], env)
        check(not any(l.split()[:1] == ["1"] for l in r7.stdout.splitlines()) and
              r8.returncode == 1, "another user's process or file is not attached to")
        os.unlink(foreign)
        # two processes: ambiguous without -p
        q, qpid = start_demo(env)
        r6 = run(["--once"], env)
        check(r6.returncode == 1 and "choose one with -p" in r6.stderr and str(qpid) in r6.stderr,
              "two processes: asks for -p and lists both")
        stop_demo(q)
    finally:
        stop_demo(p)
    r = run(["-p", str(pid), "--once", "--json"], env)
    check(r.returncode == 1, "after exit: -p PID fails (%s)" % r.stderr.strip())


def scrape(port, path="/metrics"):
    try:
        with urllib.request.urlopen("http://127.0.0.1:%d%s" % (port, path), timeout=10) as f:
            return f.status, f.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, ""


def parse_prometheus(text):
    samples, types, helps = {}, {}, set()
    for line in text.splitlines():
        if line.startswith("# HELP "):
            helps.add(line.split()[2])
        elif line.startswith("# TYPE "):
            _, _, name, kind = line.split()
            types[name] = kind
        elif line and not line.startswith("#"):
            name_labels, value = line.rsplit(" ", 1)
            name = name_labels.split("{", 1)[0]
            check_name = all(c.isalnum() or c == "_" for c in name)
            if not check_name:
                fail("bad metric name %r" % name)
            for suffix in ("_bucket", "_sum", "_count"):  # a histogram's samples: its family
                if name.endswith(suffix) and types.get(name[:-len(suffix)]) == "histogram":
                    name = name[:-len(suffix)]
            samples[name] = (name_labels, float(value))
    return samples, types, helps


def check_histogram(text):
    """The scheduler's queue-wait histogram of the NORMAL class as a Prometheus histogram."""
    fam = "deepseek_sched_wait_ns_normal"
    check("# TYPE %s histogram" % fam in text, "TYPE histogram for %s" % fam)
    buckets, sums, counts = [], [], []
    for line in text.splitlines():
        if line.startswith(fam + "_bucket{"):
            le = line.split('le="')[1].split('"')[0]
            buckets.append((float("inf") if le == "+Inf" else float(le), float(line.rsplit(" ", 1)[1])))
        elif line.startswith(fam + "_sum{"):
            sums.append(float(line.rsplit(" ", 1)[1]))
        elif line.startswith(fam + "_count{"):
            counts.append(float(line.rsplit(" ", 1)[1]))
    les = [b[0] for b in buckets]
    check(len(buckets) == 9 and les == sorted(les) and les[-1] == float("inf") and les[0] == 1024,
          "9 buckets, le ascending from 1024 ns to +Inf: %s" % les)
    check(all(buckets[i][1] <= buckets[i + 1][1] for i in range(8)), "cumulative bucket counts")
    check(len(counts) == 1 and counts[0] == buckets[-1][1] and counts[0] >= 1, "_count = the +Inf bucket (%s vs %s)" % (counts, buckets[-1:]))
    check(len(sums) == 1 and sums[0] > 0, "_sum > 0")
    check("sched_wait_ns_normal_le_inf" not in text and "sched_wait_ns_normal_sum_total" not in text,
          "the histogram's stats are not also served as counters")


def test_prometheus(env):
    p, pid = start_demo(env)
    srv = subprocess.Popen([MONITOR, "--prometheus", "0", "-p", str(pid)], env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = srv.stdout.readline()
        check("http://127.0.0.1:" in line, "binds 127.0.0.1 by default: %s" % line.strip())
        port = int(line.split("http://127.0.0.1:")[1].split("/")[0])
        time.sleep(0.3)
        curl = shutil.which("curl")
        if curl:
            text = subprocess.run([curl, "-sf", "http://127.0.0.1:%d/metrics" % port],
                                  capture_output=True, text=True, timeout=30).stdout
            print("scraped with", curl)
        else:
            text = scrape(port)[1]
        samples, types, helps = parse_prometheus(text)
        check(samples["deepseek_up"][1] == 1, "deepseek_up 1")
        check('pid="%d"' % pid in samples["deepseek_up"][0], "pid label")
        check('label="tools-demo"' in samples["deepseek_up"][0], "label label")
        check(types.get("deepseek_sched_tasks_run_total") == "counter", "counter with _total")
        check(types.get("deepseek_core_uptime_s") == "gauge", "gauge with unit in its name")
        check(set(types) == set(helps) and set(samples) <= set(types), "HELP and TYPE for each")
        check(wait_until(lambda: parse_prometheus(scrape(port)[1])[0]
                         ["deepseek_sched_tasks_run_total"][1] >= 25), "tasks_run >= 25")
        check(scrape(port, "/other")[0] == 404, "404 for another path")
        check_histogram(scrape(port)[1])
        # a request larger than the bound gets an error, and the server keeps serving
        import socket
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            s.sendall(b"GET /metrics HTTP/1.0\r\n" + b"X: " + b"a" * 8000 + b"\r\n\r\n")
            reply = s.recv(200)
        check(reply.startswith(b"HTTP/1.0 431"), "oversized request refused: %r" % reply[:30])
        # a crafted file (a copy of the demo's, under this test's own live pid) whose second
        # stat's name collides with the first once sanitised, and whose label has an escape
        snap = json.loads(run(["-p", str(pid), "--once", "--json"], env).stdout)
        data = bytearray(open(snap["file"], "rb").read())
        check(int.from_bytes(data[24:32], "little") % 2 == 0, "copied between two publishes")
        first = data[128:192].split(b"\0")[0]
        data[208:272] = (first.replace(b".", b"_", 1) + b"\0" * 64)[:64]
        data[64:128] = (b"evil\x1b[2J\n\"x" + b"\0" * 64)[:64]
        crafted = os.path.join(env["DS_STATS_DIR"], "%d-99.stats" % os.getpid())
        with open(crafted, "wb") as f:
            f.write(data)
        os.chmod(crafted, 0o600)
        srv2 = subprocess.Popen([MONITOR, "--prometheus", "0", "-p", str(os.getpid())], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        port2 = int(srv2.stdout.readline().split("http://127.0.0.1:")[1].split("/")[0])
        text2 = scrape(port2)[1]
        srv2.terminate()
        srv2.wait(timeout=10)
        fams = [l.split()[2] for l in text2.splitlines() if l.startswith("# TYPE ")]
        check(len(fams) == len(set(fams)) and "# skipped" in text2, "colliding names: one family")
        check('label="evil\x1b[2J\\n\\"x"' in text2, "label escaped (newline, quote)")
        listing = run(["--list"], env).stdout
        check('evil?[2J?"x' in listing and "\x1b" not in listing, "--list prints no control bytes")
        os.unlink(crafted)
        stop_demo(p)
        status, text = scrape(port)
        check(status == 200 and parse_prometheus(text)[0]["deepseek_up"][1] == 0,
              "after the process exits: deepseek_up 0")
    finally:
        if p.poll() is None:
            p.kill()
        srv.terminate()
        srv.wait(timeout=10)
    err = srv.stderr.read()
    check(srv.returncode == 0 and "Sanitizer" not in err, "server exits cleanly on SIGTERM")


def test_trace(env):
    path = os.path.join(SCRATCH, "tools_known.trace.json")
    subprocess.run([DEMO, "--trace", path], env=env, check=True, timeout=60)
    r = run(["--trace", path, "--top", "3"], env)
    print(r.stdout)
    check(r.returncode == 0, "trace report runs")
    out = r.stdout
    check("11 spans on 2 thread(s)" in out, "11 spans on 2 threads")
    check("wall 14.000 ms" in out and "busy 16.000 ms" in out, "wall 14 ms, busy 14 + 2 ms")
    lines = out.splitlines()
    total = lines[lines.index("top operators by total time:") + 2].split()
    check(total[0] == "14.000" and total[1] == "1.000" and total[2] == "2" and total[5] == "step",
          "top by total: step 14 ms, self 1 ms, 2 calls")
    by_self = lines[lines.index("top operators by self time (excluding nested spans):") + 2].split()
    check(by_self[1] == "5.000" and by_self[5] in ("load_batch", "matmul"),
          "top by self: load_batch or matmul, 5 ms each")
    i = [k for k, l in enumerate(lines) if l.startswith("critical path")][0]
    path_lines = [l.strip() for l in lines[i + 1:i + 4]]
    check(path_lines == ["compute/step  10.000 ms (self 1.000 ms)",
                         "op/forward  6.000 ms (self 1.000 ms)",
                         "op/matmul  4.000 ms (self 4.000 ms)"], "critical path step > forward > matmul")
    check("7.000 ms in 4 span(s)" in out, "I/O and data loading 5 + 2 ms (decompress not twice)")
    bad = os.path.join(SCRATCH, "tools_bad.trace.json")
    with open(bad, "w") as f:
        f.write('{"traceEvents":[{"ph":"B","ts":1,"name":"x"},{"ph":"E","ts":')
    r = run(["--trace", bad], env)
    check(r.returncode == 1 and "not a trace: byte" in r.stderr, "a cut trace: clear error")


def test_tui(env):
    tmux = shutil.which("tmux")
    if not tmux:
        print("SKIP: tmux not found; the terminal view is not tested")
        return
    p, pid = start_demo(env)
    sock = "ds-tools-%d" % os.getpid()
    t = [tmux, "-L", sock]
    try:
        # a sanitizer's report would be lost with the pane: it goes to a file checked at the end
        san_log = os.path.join(SCRATCH, "tui_sanitizer.%d" % os.getpid())
        cmd = ("env DS_STATS_DIR=%s ASAN_OPTIONS=log_path=%s UBSAN_OPTIONS=log_path=%s %s -p %d"
               % (env["DS_STATS_DIR"], san_log, san_log, MONITOR, pid))
        subprocess.run(t + ["new-session", "-d", "-x", "120", "-y", "40", cmd], check=True,
                       env=env, timeout=30)

        def screen():
            return subprocess.run(t + ["capture-pane", "-p"], capture_output=True, text=True,
                                  timeout=30).stdout

        check(wait_until(lambda: "tools-demo" in screen() and "sched.tasks_run" in screen()),
              "view shows the label and sched stats")
        s = screen()
        print(s)
        check(("pid %d" % pid) in s, "view shows the pid")
        def tasks_run():  # the demo may not have run 25 tasks yet on a loaded machine
            rows = [l for l in screen().splitlines() if "sched.tasks_run" in l]
            return float(rows[0].split("sched.tasks_run")[1].split()[0]) if rows else 0

        check(wait_until(lambda: tasks_run() >= 25), "tasks_run >= 25 shown")
        check(wait_until(lambda: "cpu0" in screen()), "per-CPU bars (telemetry.cpu.N)")
        subprocess.run(t + ["resize-window", "-x", "70", "-y", "20"], timeout=30)
        check(wait_until(lambda: "tools-demo" in screen()), "still drawn after a resize")
        subprocess.run(t + ["send-keys", "s"], timeout=30)
        check(wait_until(lambda: "sort: value" in screen()), "s sorts by value")
        subprocess.run(t + ["send-keys", "p"], timeout=30)
        check(wait_until(lambda: "PAUSED" in screen()), "p pauses")
        subprocess.run(t + ["send-keys", "p"], timeout=30)
        stop_demo(p)
        check(wait_until(lambda: "has exited" in screen()), "says when the process has exited")
        subprocess.run(t + ["send-keys", "q"], timeout=30)
        check(wait_until(lambda: subprocess.run(t + ["has-session"], capture_output=True).returncode
                         != 0), "q quits")
        # per-GPU bars, from a synthetic file with GPU rows under this test's pid
        path = os.path.join(env["DS_STATS_DIR"], "%d-7.stats" % os.getpid())
        write_stats(path, os.getpid(), "synthetic", GPU_STATS, time.time_ns())
        cmd = ("env DS_STATS_DIR=%s ASAN_OPTIONS=log_path=%s UBSAN_OPTIONS=log_path=%s %s -p %d"
               % (env["DS_STATS_DIR"], san_log, san_log, MONITOR, os.getpid()))
        subprocess.run(t + ["new-session", "-d", "-x", "120", "-y", "40", cmd], check=True,
                       env=env, timeout=30)
        check(wait_until(lambda: "synthetic" in screen()), "view of the synthetic file")
        bars = {l.split()[0]: l for l in screen().splitlines() if l.startswith("gpu")}
        print("\n".join(bars.values()))
        check("30.0%" in bars.get("gpu0", "") and "70.0%" in bars.get("gpu1", ""), "per-GPU utilisation bars")
        check("25.0%" in bars.get("gpu0-mem", "") and "1.0/4.0 GiB" in bars.get("gpu0-mem", "") and
              "75.0%" in bars.get("gpu1-mem", ""), "per-GPU memory bars with bytes")
        subprocess.run(t + ["send-keys", "q"], timeout=30)
        os.unlink(path)
        import glob
        reports = glob.glob(san_log + "*")
        check(not reports, "no sanitizer report from the view %s" %
              "".join(open(f).read() for f in reports)[:2000])
    finally:
        if p.poll() is None:
            p.kill()
        subprocess.run(t + ["kill-server"], capture_output=True)


def test_tune(env):
    tune, demo = MONITOR, DEMO  # argv[2] is deepseek-tune for this mode
    log = os.path.join(SCRATCH, "tune_trials.jsonl")
    out = os.path.join(SCRATCH, "tune_best.conf")
    for f in (log, out):
        if os.path.exists(f):
            os.unlink(f)
    space = ["--param", "telemetry_period_ms=100:500:100", "--param", "DS_TRACE_MAX_EVENTS=2048,4096,8192"]
    base = [tune] + space + ["--metric", "score", "--repeats", "3", "--log", log, "--out", out]
    r = subprocess.run(base + ["--", demo, "--objective"], env=env, capture_output=True,
                       text=True, timeout=100)
    check(r.returncode == 0, "grid search runs (%s)" % r.stderr[-300:])
    check("best score 0 with telemetry_period_ms=300,trace_max_events=4096 (15 trials run, 0 resumed"
          in r.stdout, "grid finds the known best over 15 trials: %s" % r.stdout.strip())
    check("15/15" in r.stderr and "best 0 (telemetry_period_ms=300" in r.stderr, "progress with best so far")
    trials = [json.loads(l) for l in open(log)]
    check(len(trials) == 15 and all(t["status"] == "ok" and len(t["values"]) == 3 for t in trials),
          "15 JSON lines, 3 values each")
    check(all(t["median"] == sorted(t["values"])[1] for t in trials), "median of the repeats")
    conf = open(out).read()
    check("telemetry_period_ms = 300" in conf and "trace_max_events = 4096" in conf, "config written")
    env2 = {k: v for k, v in env.items() if not k.startswith("DS_") or k == "DS_STATS_DIR"}
    env2["DS_CONFIG"] = out
    o = subprocess.run([demo, "--objective"], env=env2, capture_output=True, text=True, timeout=30)
    check("score 0\n" in o.stdout, "the library loads the config through DS_CONFIG")
    r = subprocess.run(base + ["--", demo, "--objective"], env=env, capture_output=True,
                       text=True, timeout=100)
    check("(0 trials run, 15 resumed" in r.stdout, "a second run resumes from the log")
    rlog = os.path.join(SCRATCH, "tune_random.jsonl")
    if os.path.exists(rlog):
        os.unlink(rlog)
    r = subprocess.run([tune] + space + ["--metric", "score", "--repeats", "1", "--strategy", "random",
                        "--trials", "5", "--seed", "7", "--log", rlog, "--out", out, "--", demo,
                        "--objective"], env=env, capture_output=True, text=True, timeout=100)
    keys = [json.loads(l)["key"] for l in open(rlog)]
    check(r.returncode == 0 and len(keys) == 5 and len(set(keys)) == 5, "random: 5 distinct points")
    flog = os.path.join(SCRATCH, "tune_fail.jsonl")
    if os.path.exists(flog):
        os.unlink(flog)
    r = subprocess.run([tune, "--param", "telemetry_period_ms=100,200", "--metric", "score",
                        "--repeats", "1", "--log", flog, "--out", out, "--", "false"], env=env,
                       capture_output=True, text=True, timeout=100)
    check(r.returncode == 1 and "no trial succeeded" in r.stderr and
          json.loads(open(flog).readline())["status"] == "exited with status 1", "failing command")
    t0 = time.time()
    r = subprocess.run([tune, "--param", "telemetry_period_ms=100", "--metric", "score",
                        "--repeats", "1", "--timeout-s", "1", "--log", flog, "--out", out, "--",
                        "sh", "-c", "sleep 30; echo score 1"], env=env, capture_output=True,
                       text=True, timeout=100)
    check(r.returncode == 1 and "timed out" in r.stderr and time.time() - t0 < 15, "time limit")
    for bad, why in (("nosuch=1", "not a libdeepseek parameter"),
                     ("telemetry_period_ms=0:10", "outside the parameter's range"),
                     ("telemetry_period_ms=5:1", "LO <= HI")):
        r = subprocess.run([tune, "--param", bad, "--metric", "m", "--", "true"], env=env,
                           capture_output=True, text=True, timeout=30)
        check(r.returncode == 2 and why in r.stderr, "refuses --param %s" % bad)
    test_tune_tpe(env)
    test_tune_constraints(env)
    test_tune_workloads(env)


# A deterministic two-metric command: thr and p99 from the two parameters.
TWO_METRICS = ["sh", "-c", "echo thr $((DS_TELEMETRY_PERIOD_MS * DS_TRACE_MAX_EVENTS / 1024)); "
               "echo p99 $((DS_TELEMETRY_PERIOD_MS + DS_TRACE_MAX_EVENTS / 100))"]
TWO_SPACE = ["--param", "telemetry_period_ms=100:500:100", "--param", "trace_max_events=2048,4096,8192"]


def tune_two(env, extra, name, strategy="grid", fresh=True):
    log, out = os.path.join(SCRATCH, name + ".jsonl"), os.path.join(SCRATCH, name + ".conf")
    for f in (log, out):
        if fresh and os.path.exists(f):
            os.unlink(f)
    r = subprocess.run([MONITOR] + TWO_SPACE + extra + ["--repeats", "1", "--strategy", strategy,
                        "--log", log, "--out", out, "--"] + TWO_METRICS, env=env,
                       capture_output=True, text=True, timeout=100)
    trials = [json.loads(l) for l in open(log)] if os.path.exists(log) else []
    return r, trials, out


def test_tune_constraints(env):
    points = [(a, b) for a in range(100, 501, 100) for b in (2048, 4096, 8192)]
    thr = {p: p[0] * p[1] // 1024 for p in points}
    p99 = {p: p[0] + p[1] // 100 for p in points}
    # constraint: only points with telemetry_period_ms * 20 <= trace_max_events are tried
    feasible = [p for p in points if p[0] * 20 <= p[1]]
    r, trials, _ = tune_two(env, ["--constraint", "telemetry_period_ms * 20 <= DS_TRACE_MAX_EVENTS",
                                  "--metric", "thr"], "tune_con")
    seen = {(t["params"]["telemetry_period_ms"], t["params"]["trace_max_events"]) for t in trials}
    check(r.returncode == 0 and seen == set(feasible) and len(trials) == len(feasible),
          "grid tries exactly the %d points that satisfy the constraint" % len(feasible))
    best = max(feasible, key=lambda p: thr[p])
    check("best thr %d with telemetry_period_ms=%d,trace_max_events=%d" % (thr[best], best[0], best[1])
          in r.stdout, "the best feasible point: %s" % r.stdout.strip())
    check("%d of the 15 grid points satisfy the constraints" % len(feasible) in r.stderr, "says how many")
    r, trials, _ = tune_two(env, ["--constraint", "(telemetry_period_ms >= 300 && trace_max_events != 4096) "
                                  "|| !(telemetry_period_ms % 200)", "--metric", "thr", "--trials", "6",
                                  "--seed", "3"], "tune_con_tpe", "tpe")
    ok = all((t["params"]["telemetry_period_ms"] >= 300 and t["params"]["trace_max_events"] != 4096) or
             t["params"]["telemetry_period_ms"] % 200 == 0 for t in trials)
    check(r.returncode == 0 and len(trials) == 6 and ok, "tpe and its start-up propose feasible points only")
    for bad, why in (("nosuch < 3", "not a --param"), ("telemetry_period_ms <", "unexpected end"),
                     ("(telemetry_period_ms", "missing )"), ("telemetry_period_ms 3", "trailing text")):
        r, _, _ = tune_two(env, ["--constraint", bad, "--metric", "thr"], "tune_bad")
        check(r.returncode == 2 and why in r.stderr, "refuses --constraint %r (%s)" % (bad, why))
    r, _, _ = tune_two(env, ["--constraint", "telemetry_period_ms > 1000", "--metric", "thr"], "tune_none")
    check(r.returncode == 2 and "no point of the 15" in r.stderr, "an empty feasible set is refused")
    # maximise thr subject to p99 <= 150: infeasible trials are logged, never the best
    r, trials, out = tune_two(env, ["--metric", "thr", "--limit", "p99<=150"], "tune_lim")
    within = [p for p in points if p99[p] <= 150]
    best = max(within, key=lambda p: thr[p])
    check(r.returncode == 0 and "best thr %d with telemetry_period_ms=%d,trace_max_events=%d" %
          (thr[best], best[0], best[1]) in r.stdout and "%d over the limit" % (15 - len(within)) in r.stdout,
          "throughput subject to p99 <= 150: %s" % r.stdout.strip())
    bykey = {(t["params"]["telemetry_period_ms"], t["params"]["trace_max_events"]): t for t in trials}
    check(all(bykey[p]["feasible"] == (p99[p] <= 150) and bykey[p]["limit_median"] == p99[p] for p in points),
          "each trial logs its limited metric and whether it is feasible")
    check("# subject to p99 <= 150" in open(out).read(), "the config says the limit")
    r, _, _ = tune_two(env, ["--metric", "thr", "--limit", "p99<=150"], "tune_lim", fresh=False)
    check("(0 trials run, 15 resumed" in r.stdout and "best thr %d" % thr[best] in r.stdout,
          "a resumed search keeps the limit")
    r, _, _ = tune_two(env, ["--metric", "thr", "--limit", "p99<=1"], "tune_lim_none")
    check(r.returncode == 1 and "no trial succeeded within the limit" in r.stderr, "nothing within the limit")
    r, _, _ = tune_two(env, ["--metric", "thr", "--limit", "p99<150"], "tune_bad")
    check(r.returncode == 2 and "want METRIC<=VALUE" in r.stderr, "refuses a bad --limit")
    # the model ranks infeasible trials below feasible ones: tpe within the limit
    r, trials, _ = tune_two(env, ["--metric", "thr", "--limit", "p99>=250", "--trials", "12",
                                  "--startup", "4"], "tune_lim_tpe", "tpe")
    check(r.returncode == 0 and len(trials) == 12 and "best thr" in r.stdout, "tpe with a limit runs")
    # minimise p99
    r, _, _ = tune_two(env, ["--metric", "p99", "--minimize"], "tune_min")
    low = min(points, key=lambda p: p99[p])
    check("best p99 %d with telemetry_period_ms=%d,trace_max_events=%d" % (p99[low], low[0], low[1])
          in r.stdout, "minimise p99: %s" % r.stdout.strip())


def test_tune_workloads(env):
    for wl, space, metric, extra in (
            ("batch", ["--param", "batch_max_size=1,16", "--param", "sched_workers=2"], "p99_us",
             ["--minimize", "--limit", "throughput>=1"]),
            ("batch_peak", ["--param", "batch_max_size=1,16", "--param", "sched_workers=2"], "throughput",
             []),
            ("sched", ["--param", "sched_spin_us=0,50"], "throughput", []),
            ("cache", ["--param", "cache_l1_bytes=1048576,16777216"], "hit_ratio", [])):
        log = os.path.join(SCRATCH, "tune_wl_%s.jsonl" % wl)
        if os.path.exists(log):
            os.unlink(log)
        r = subprocess.run([MONITOR] + space + ["--metric", metric, "--repeats", "1", "--log", log,
                            "--out", os.path.join(SCRATCH, "tune_wl.conf"), "--workload", wl] + extra,
                           env=env, capture_output=True, text=True, timeout=100)
        trials = [json.loads(l) for l in open(log)] if os.path.exists(log) else []
        check(r.returncode == 0 and len(trials) == 2 and all(t["status"] == "ok" and t["median"] > 0
                                                              for t in trials) and "Sanitizer" not in r.stderr,
              "--workload %s runs in-process (%s)" % (wl, r.stderr[-300:]))
        if wl == "batch":  # batching serves the same load with a far lower tail than one by one
            p99 = {t["params"]["batch_max_size"]: t["median"] for t in trials}
            check(p99[16] < p99[1], "batch: p99 with batches of 16 (%g us) < one by one (%g us)" %
                  (p99[16], p99[1]))
        if wl == "batch_peak":  # 128 requests outstanding: batches of 16 serve far more
            thr = {t["params"]["batch_max_size"]: t["median"] for t in trials}
            check(thr[16] > 2 * thr[1], "batch_peak: throughput with batches of 16 (%g/s) > 2x one by one "
                  "(%g/s)" % (thr[16], thr[1]))
        if wl == "cache":  # a 16 MiB L1 holds every key; 1 MiB about an eighth
            hit = {t["params"]["cache_l1_bytes"]: t["median"] for t in trials}
            check(hit[16777216] > hit[1048576], "cache: hit ratio grows with L1 (%s)" % hit)
    for args, why in ((["--workload", "nosuch"], "one of batch"),
                      (["--workload", "batch", "--metric", "hit_ratio"], "has no metric hit_ratio")):
        r = subprocess.run([MONITOR, "--param", "sched_workers=1"] + (["--metric", "p99_us"] if
                           "--metric" not in args else []) + args, env=env, capture_output=True,
                           text=True, timeout=30)
        check(r.returncode == 2 and why in r.stderr, "refuses %s" % " ".join(args))


# The batcher-like space of tune_objective (3,200 grid points). Its exhaustive grid's best,
# measured with deepseek-tune --strategy grid over TPE_SPACE (the objective is deterministic):
# throughput 8235.74 at sched_spin_us=200,sched_tick_ms=50,sched_low_duty_pct=50,
# precision_skinny_max_m=16.
TPE_SPACE = ["--param", "sched_spin_us=0,20,50,100,200,500,1000,5000", "--param", "sched_tick_ms=5:100:5",
             "--param", "sched_low_duty_pct=25:100:25", "--param", "precision_skinny_max_m=0:64:16"]
GRID_BEST = 8235.74


def tune_search(env, strategy, trials, seed, log):
    if os.path.exists(log):
        os.unlink(log)
    out = os.path.join(SCRATCH, "tune_tpe.conf")
    args = [MONITOR] + TPE_SPACE + ["--metric", "throughput", "--repeats", "1", "--strategy", strategy,
                                    "--trials", str(trials), "--seed", str(seed), "--log", log,
                                    "--out", out, "--", OBJECTIVE]
    r = subprocess.run(args, env=env, capture_output=True, text=True, timeout=100)
    check(r.returncode == 0 and "Sanitizer" not in r.stderr, "%s search runs (%s)" % (strategy, r.stderr[-300:]))
    return r, [json.loads(l) for l in open(log)]


def test_tune_tpe(env):
    if not OBJECTIVE:
        fail("tune mode needs the tune_objective program")
    tlog, rlog = os.path.join(SCRATCH, "tune_tpe.jsonl"), os.path.join(SCRATCH, "tune_rnd.jsonl")
    _, tpe = tune_search(env, "tpe", 40, 1, tlog)
    _, rnd = tune_search(env, "random", 40, 1, rlog)
    check(len(tpe) == 40 and len({t["key"] for t in tpe}) == 40, "tpe: 40 trials (the budget), all distinct")
    tbest, rbest = max(t["median"] for t in tpe), max(t["median"] for t in rnd)
    check(tbest >= 0.9 * GRID_BEST, "tpe with 40 of 3200 evaluations is within 10%% of the grid's best "
          "(%g vs %g)" % (tbest, GRID_BEST))
    check(tbest > rbest, "tpe beats random search at the same budget and seed (%g > %g)" % (tbest, rbest))
    # resume: 20 trials, then the same search with 30 reruns none and proposes what a fresh
    # 30-trial search proposes
    r, first = tune_search(env, "tpe", 20, 3, tlog)
    args = [MONITOR] + TPE_SPACE + ["--metric", "throughput", "--repeats", "1", "--strategy", "tpe",
                                    "--trials", "30", "--seed", "3", "--log", tlog, "--out",
                                    os.path.join(SCRATCH, "tune_tpe.conf"), "--", OBJECTIVE]
    r = subprocess.run(args, env=env, capture_output=True, text=True, timeout=100)
    check(r.returncode == 0 and "(10 trials run, 20 resumed" in r.stdout,
          "a tpe search resumes from its log: %s" % r.stdout.strip())
    resumed = [t["key"] for t in map(json.loads, open(tlog))]
    _, fresh = tune_search(env, "tpe", 30, 3, rlog)
    check(resumed == [t["key"] for t in fresh], "the resumed search proposes what an uninterrupted one does")
    r = subprocess.run(args, env=env, capture_output=True, text=True, timeout=100)
    check("(0 trials run, 30 resumed" in r.stdout, "a finished tpe search reruns nothing")


def main():
    stats_dir = tempfile.mkdtemp(prefix="ds-tools-", dir=SCRATCH)
    os.chmod(stats_dir, 0o700)
    try:
        {"monitor": test_monitor, "prometheus": test_prometheus, "trace": test_trace,
         "tui": test_tui, "tune": test_tune}[MODE](env_with(stats_dir))
    finally:
        shutil.rmtree(stats_dir, ignore_errors=True)
    print("PASS", MODE)


if __name__ == "__main__":
    main()
