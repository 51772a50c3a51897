/* Fuzz target: deepseek-monitor's trace reader and analysis (tools/trace_reader.c,
 * tools/trace_report.c) on arbitrary bytes, as read from a trace file. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "trace_report.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static FILE *sink;
  if (!sink) sink = fopen("/dev/null", "w");
  dst_trace t;
  dst_report r = {0};
  if (dst_parse(&t, (const char *)data, size) == 0 && dst_analyse(&r, &t) == 0 && sink)
    dst_print(sink, &r, &t, 5);
  dst_report_free(&r);
  dst_free(&t);
  return 0;
}
