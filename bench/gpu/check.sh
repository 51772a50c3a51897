#!/bin/sh
# GPU check, for a machine with an NVIDIA GPU: builds with CUDA required, runs the whole test
# suite (GPU tests run instead of skipping), the main example, and the benchmarks, within a few
# minutes. Prints "gpu-check: PASS" or fails. Needs no network; does not reset the GPU.
set -eu
cd "$(dirname "$0")/../.."
out=${OUT:-build-gpu-out}
mkdir -p "$out"
# No GPU: fail now, before minutes of building (every GPU test would fail under DS_REQUIRE_GPU=1).
if ! { nvidia-smi -L 2>/dev/null | grep -q '^GPU '; } && ! [ -e /dev/nvidia0 ]; then
  echo "gpu-check: FAIL (no NVIDIA GPU: nvidia-smi lists none and there is no /dev/nvidia0)"
  exit 1
fi
command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/nvidia-smi.txt"
./scripts/deps.sh || true
cmake -S . -B build-gpu -DCMAKE_BUILD_TYPE=Release -DDS_WITH_CUDA=ON -DDS_WERROR=ON > "$out/configure.log" 2>&1 ||
  { tail -30 "$out/configure.log"; exit 1; }
grep "libdeepseek" "$out/configure.log" || true
cmake --build build-gpu -j "$(nproc)" > "$out/build.log" 2>&1 || { tail -50 "$out/build.log"; exit 1; }
(cd build-gpu && DS_REQUIRE_GPU=1 ctest --output-on-failure -j 4 -LE packaging --timeout 240) 2>&1 | tee "$out/ctest.log"
grep -q "tests failed out of" "$out/ctest.log" && grep -q " 0 tests failed" "$out/ctest.log" || { echo "gpu-check: FAIL (ctest)"; exit 1; }
./build-gpu/examples/deepseek_info 2>&1 | tee "$out/deepseek_info.txt"
# Per-GPU telemetry from the real NVML as deepseek-monitor sees it (telemetry.gpu0.util_pct,
# mem_used_bytes, mem_total_bytes), from a small program using the library.
sd=$(mktemp -d)
(sleep 8 | DS_STATS_DIR=$sd ./build-gpu/tools/ds_tools_demo --serve 6 > /dev/null) &
sleep 3
DS_STATS_DIR=$sd ./build-gpu/tools/deepseek-monitor --once --json > "$out/monitor_gpu.json" || true
wait
rm -rf "$sd"
grep -o '"telemetry.gpu0[^,]*' "$out/monitor_gpu.json" || { echo "gpu-check: FAIL (no per-GPU stats)"; exit 1; }
# The GPU benchmarks only (the CPU ones are run by `make bench`), to stay within a few minutes:
# every bench_*_gpu, e.g. bench_precision_gemm_gpu (bf16 8192^3 vs cublasGemmEx and >= 70% of
# the H200's ~790 TFLOP/s), bench_precision_mlp_gpu (the 784-1024-1024-10 MLP step at batch 256,
# mixed bf16 vs fp32), bench_precision_kernels_gpu (the
# training kernels on bf16 tensors vs device-to-device copy bandwidth), bench_cache_gpu (the
# cache's GPU tier: put/get of 4 MiB values vs fabric buffer transfers) and bench_fabric_transfer_gpu
# (host<->GPU bandwidth through the fabric vs raw cudaMemcpy on pinned memory, and zero-copy vs
# copy-then-compute).
# A benchmark that crashes or times out is recorded and fails the check at the end, after the
# others have run (a pipe into tee would hide its exit status: /bin/sh has no pipefail).
failed=""
run_bench() { # name, command...
  n=$1
  shift
  if timeout 120 "$@" > "$out/last.jsonl" 2>&1; then :; else failed="$failed $n"; fi
  tee -a "$out/bench.jsonl" < "$out/last.jsonl"
}
for b in build-gpu/bench/bench_*_gpu; do
  [ -x "$b" ] || continue
  run_bench "$(basename "$b")" "$b" --json
done
# The MLP step (issue 4: mixed vs fp32 >= 2.3x) also at larger batches, where the tensor cores'
# arithmetic rather than the per-call round trips sets the step time (a few seconds each).
for batch in 4096 16384; do
  run_bench "bench_precision_mlp_gpu@$batch" build-gpu/bench/bench_precision_mlp_gpu --json --batch "$batch"
done
# The point cloud as a fabric graph across every device present (the GPU runs the example's
# CUDA kernels; also as an OpenCL device when its driver is installed): HEFT vs the best single
# device; it exits 1 if any placement's image differs, or (DS_REQUIRE_GPU=1) if the CUDA
# kernels did not run on the GPU. ctest above ran its --check (random placements) the same way.
if DS_REQUIRE_GPU=1 timeout 120 build-gpu/bench/bench_fabric_pointcloud_graph --json \
    > "$out/pointcloud_graph.jsonl" \
    2> "$out/pointcloud_graph.txt"; then
  cat "$out/pointcloud_graph.txt"
  tee -a "$out/bench.jsonl" < "$out/pointcloud_graph.jsonl"
else
  cat "$out/pointcloud_graph.txt"
  echo "gpu-check: FAIL (point cloud graph)"
  exit 1
fi
[ -z "$failed" ] || { echo "gpu-check: FAIL (crashed or timed out:$failed)"; exit 1; }
echo "gpu-check: PASS"
