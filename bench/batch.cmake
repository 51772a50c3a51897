# The batcher's benchmarks need no anchor library: their anchors (a direct handler call; the
# unbatched and fixed-batch servers) are measured in the same run.
ds_bench_link(bench_batch_serving m)
