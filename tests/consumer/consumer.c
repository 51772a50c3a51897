/* Installed-library consumer: creates a context, checks the version, prints one line. */
#include <deepseek.h>
#include <stdio.h>

int main(void) {
  ds_context_options o = DS_CONTEXT_OPTIONS_INIT;
  o.flags = DS_CONTEXT_NO_ENV;
  ds_context *ctx = NULL;
  ds_status st = ds_context_create(&ctx, &o);
  if (st != DS_OK) {
    fprintf(stderr, "consumer: %s: %s\n", ds_status_name(st), ds_context_last_error(NULL));
    return 1;
  }
  if (ds_version_number() != DS_VERSION_NUMBER) return 2;
  printf("consumer ok: libdeepseek %s\n", ds_version_string());
  ds_context_destroy(ctx);
  return 0;
}
