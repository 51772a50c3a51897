/* The README's first program, built with the examples so it stays true. */
#include <deepseek.h>
#include <stdio.h>

int main(void) {
  ds_context_options opts = DS_CONTEXT_OPTIONS_INIT;
  opts.log_level = DS_LOG_INFO;
  ds_context *ctx = NULL;
  if (ds_context_create(&ctx, &opts) != DS_OK) {
    fprintf(stderr, "%s\n", ds_context_last_error(NULL));
    return 1;
  }
  ds_topology_info topo = DS_TOPOLOGY_INFO_INIT;
  if (ds_topology_get(&topo, ctx) == DS_OK)
    printf("%d cores, %d hardware threads\n", topo.cores, topo.pus);
  ds_telemetry_sample s = DS_TELEMETRY_SAMPLE_INIT;
  if (ds_telemetry_latest(&s, ctx) == DS_OK && (s.valid & DS_TELEMETRY_CPU))
    printf("cpu %.0f%%\n", 100.0 * s.cpu_util);
  ds_context_destroy(ctx);
  return 0;
}
