/* Fuzz target: ds_stats_file_read on arbitrary file contents (what deepseek-monitor reads from
 * other processes' files). */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static char path[64];
  if (!path[0]) snprintf(path, sizeof path, "/tmp/ds_fuzz_stats.%d", (int)getpid());
  FILE *f = fopen(path, "wb");
  if (!f) return 0;
  fwrite(data, 1, size, f);
  fclose(f);
  ds_stats *s = NULL;
  ds_status st = ds_stats_file_read(&s, path);
  if (st == DS_OK) {
    /* Every entry of an accepted file must be readable and NUL-terminated. */
    for (size_t i = 0; i < ds_stats_count(s); i++) {
      ds_stat e;
      if (ds_stats_at(&e, s, i) != DS_OK || !e.name) __builtin_trap();
      (void)strlen(e.name);
    }
    (void)ds_stats_label(s);
  } else if (s) {
    __builtin_trap(); /* failure must leave no snapshot */
  }
  ds_stats_free(s);
  unlink(path);
  return 0;
}
