/* libFuzzer target for the predictor's model-file loader: any bytes must give DS_OK or
 * DS_ERR_FORMAT, never a crash or a leak. Fuzz builds define
 * FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION, which makes the loader skip the checksum so that
 * mutated inputs reach the field checks behind it. A valid seed model comes from
 * `fuzz_predict_model -seed DIR` (writes DIR/seed.model). */
#include <deepseek.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "fuzz_util.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  for (int i = 1; i + 1 < *argc; i++)
    if (!strcmp((*argv)[i], "-seed")) {
      ds_predictor_options o = DS_PREDICTOR_OPTIONS_INIT;
      o.window = 4, o.hidden = 4, o.horizons = 2, o.nfeatures = 2;
      ds_predictor *p = NULL;
      char path[4096];
      snprintf(path, sizeof path, "%s/seed.model", (*argv)[i + 1]);
      if (ds_predictor_create(&p, fuzz_ctx(), &o) != DS_OK || ds_predictor_save(p, path) != DS_OK)
        abort();
      ds_predictor_destroy(p);
      exit(0);
    }
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  ds_predictor *p = NULL;
  ds_status st = ds_predictor_load_buffer(&p, fuzz_ctx(), data, size);
  if (st != DS_OK && st != DS_ERR_FORMAT && st != DS_ERR_NO_MEMORY) abort();
  ds_predictor_destroy(p);
  return 0;
}
