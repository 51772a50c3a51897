/* deepseek_info: what libdeepseek sees on this machine — version, backends, topology, CUDA
 * devices, a few telemetry samples, the stats the context publishes — and a trace file of the
 * run that Perfetto opens. The first program to run (`make demo`).
 *
 * usage: deepseek_info [--samples N] [--period-ms MS] [--trace FILE]   */
#define _POSIX_C_SOURCE 200809L
#include <deepseek.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void print_bytes(const char *label, uint64_t bytes) {
  const char *units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = (double)bytes;
  int u = 0;
  while (v >= 1024.0 && u < 4) v /= 1024.0, u++;
  printf("%s%.1f %s", label, v, units[u]);
}

static void print_topology(ds_context *ctx) {
  ds_topology_info t = DS_TOPOLOGY_INFO_INIT;
  ds_status st = ds_topology_get(&t, ctx);
  if (st != DS_OK) {
    printf("topology: unavailable (%s)\n", ds_context_last_error(ctx));
    return;
  }
  printf("topology: %d package(s), %d NUMA node(s), %d core(s), %d hardware thread(s), ",
         t.packages, t.numa_nodes, t.cores, t.pus);
  print_bytes("", t.total_memory_bytes);
  printf(" memory\n");
  for (int l = 0; l < DS_TOPOLOGY_CACHE_LEVELS; l++)
    if (t.cache_bytes[l]) {
      printf("  L%d cache: %d x ", l + 1, t.cache_count[l]);
      print_bytes("", t.cache_bytes[l]);
      printf("\n");
    }
  for (int n = 0; n < t.numa_nodes; n++) {
    ds_numa_node_info ni = DS_NUMA_NODE_INFO_INIT;
    if (ds_topology_numa_node(&ni, ctx, n) != DS_OK) continue;
    printf("  NUMA node %d: %d cores, %d threads, ", ni.os_index, ni.cores, ni.pus);
    print_bytes("", ni.memory_bytes);
    printf("\n");
  }
  printf("devices: cpu");
  for (int d = 0; d < t.cuda_devices; d++) {
    ds_cuda_device_info di = DS_CUDA_DEVICE_INFO_INIT;
    if (ds_topology_cuda_device(&di, ctx, d) != DS_OK) continue;
    printf(", cuda:%d %s (sm_%d%d, %d SMs, ", d, di.name, di.cc_major, di.cc_minor, di.sm_count);
    print_bytes("", di.memory_bytes);
    printf(")");
  }
  printf(t.cuda_devices ? "\n" : " (no CUDA device found: CPU paths in use)\n");
}

static void print_value(const char *label, float v, int valid) {
  if (valid)
    printf("  %s %5.1f%%", label, 100.0 * v);
  else
    printf("  %s   n/a", label);
}

static void print_telemetry(ds_context *ctx, int samples, int period_ms) {
  printf("telemetry (every %d ms):\n", period_ms);
  uint64_t last_seq = UINT64_MAX;
  for (int got = 0; got < samples;) {
    ds_trace_begin(ctx, "demo", "wait_sample");
    struct timespec ts = {0, 10 * 1000 * 1000};
    nanosleep(&ts, NULL);
    ds_trace_end(ctx);
    ds_telemetry_sample s = DS_TELEMETRY_SAMPLE_INIT;
    if (ds_telemetry_latest(&s, ctx) != DS_OK) {
      printf("  unavailable: %s\n", ds_context_last_error(ctx));
      return;
    }
    if (s.seq == last_seq) continue;
    last_seq = s.seq;
    got++;
    printf("  #%-3llu", (unsigned long long)s.seq);
    print_value("cpu", s.cpu_util, s.valid & DS_TELEMETRY_CPU);
    print_value("mem", s.mem_used, s.valid & DS_TELEMETRY_MEM);
    print_value(s.valid & DS_TELEMETRY_PSI ? "mem-psi" : "mem-prs", s.mem_pressure,
                s.valid & (DS_TELEMETRY_PSI | DS_TELEMETRY_MEM));
    print_value("gpu", s.gpu_util, s.valid & DS_TELEMETRY_GPU);
    printf("\n");
    ds_trace_counter(ctx, "cpu_util", s.cpu_util);
  }
  float cores[1024];
  size_t n = 0;
  if (ds_telemetry_cores(cores, &n, ctx, 1024) == DS_OK) {
    printf("  per CPU:");
    for (size_t i = 0; i < n && i < 64; i++) printf(" %.0f%%", 100.0 * cores[i]);
    printf("\n");
  }
}

static void print_stats(ds_context *ctx) {
  ds_stats *s = NULL;
  if (ds_stats_snapshot(&s, ctx) != DS_OK) return;
  printf("stats (%zu):", ds_stats_count(s));
  for (size_t i = 0; i < ds_stats_count(s); i++) {
    ds_stat st;
    if (ds_stats_at(&st, s, i) == DS_OK && !isnan(st.value)) printf(" %s=%g", st.name, st.value);
  }
  printf("\n");
  ds_stats_free(s);
  const char *path = ds_stats_file_path(ctx);
  printf("stats file: %s\n", path ? path : "(disabled)");
}

int main(int argc, char **argv) {
  int samples = 5, period_ms = 100;
  const char *trace = "deepseek_info.trace.json";
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--samples") && i + 1 < argc) samples = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--period-ms") && i + 1 < argc) period_ms = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--trace") && i + 1 < argc) trace = argv[++i];
    else {
      fprintf(stderr, "usage: %s [--samples N] [--period-ms MS] [--trace FILE]\n", argv[0]);
      return 2;
    }
  }
  ds_context_options opts = DS_CONTEXT_OPTIONS_INIT;
  ds_param_value params[] = {{DS_PARAM_TELEMETRY_PERIOD_MS, 0, period_ms}};
  opts.params = params;
  opts.nparams = 1;
  ds_context *ctx = NULL;
  ds_status st = ds_context_create(&ctx, &opts);
  if (st != DS_OK) {
    fprintf(stderr, "deepseek_info: %s: %s\n", ds_status_name(st), ds_context_last_error(NULL));
    return 1;
  }
  if (ds_trace_start(ctx, trace) != DS_OK)
    fprintf(stderr, "deepseek_info: no trace: %s\n", ds_context_last_error(ctx));
  printf("libdeepseek %s\n%s\n", ds_version_string(), ds_build_summary());
  ds_trace_begin(ctx, "demo", "topology");
  print_topology(ctx);
  ds_trace_end(ctx);
  print_telemetry(ctx, samples, period_ms);
  print_stats(ctx);
  if (ds_trace_enabled(ctx)) {
    if (ds_trace_stop(ctx) == DS_OK)
      printf("trace: %s (open it in https://ui.perfetto.dev)\n", trace);
    else
      fprintf(stderr, "deepseek_info: trace: %s\n", ds_context_last_error(ctx));
  }
  ds_context_destroy(ctx);
  return 0;
}
