#include <stdio.h>
#include <deepseek.h>
int main(void) {
  ds_context *ctx = NULL;
  ds_status st = ds_context_create(&ctx, NULL);
  if (st != DS_OK) { fprintf(stderr, "%s\n", ds_context_last_error(NULL)); return 1; }
  printf("libdeepseek %s (%s)\n", ds_version_string(), ds_build_summary());
  ds_context_destroy(ctx);
  return 0;
}
