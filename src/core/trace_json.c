/* The trace file writer: Chrome Trace Event JSON ("JSON object format") from the per-thread
 * buffers, with strings escaped for JSON and any invalid UTF-8 replaced by U+FFFD, so the file
 * always parses whatever bytes callers passed as names. */
#include <errno.h>
#include <math.h>
#include <string.h>
#include <unistd.h>

#include "trace_internal.h"

/* Length of the valid UTF-8 sequence at s, or 0 if it is not one (overlong, surrogate, beyond
 * U+10FFFF, or cut short: a NUL is never a continuation byte, so this never reads past it). */
static size_t ds__utf8_len(const unsigned char *s) {
  static const uint32_t min_cp[5] = {0, 0, 0x80, 0x800, 0x10000};
  size_t n;
  uint32_t cp;
  if (s[0] < 0x80) return 1;
  if ((s[0] & 0xE0) == 0xC0) n = 2, cp = s[0] & 0x1Fu;
  else if ((s[0] & 0xF0) == 0xE0) n = 3, cp = s[0] & 0x0Fu;
  else if ((s[0] & 0xF8) == 0xF0) n = 4, cp = s[0] & 0x07u;
  else return 0;
  for (size_t k = 1; k < n; k++) {
    if ((s[k] & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (s[k] & 0x3Fu);
  }
  if (cp < min_cp[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
  return n;
}

static void ds__json_string(FILE *f, const char *str) {
  const unsigned char *s = (const unsigned char *)str;
  fputc('"', f);
  while (*s) {
    size_t n = ds__utf8_len(s);
    if (n == 0) {
      fputs("\\ufffd", f);
      s++;
    } else if (*s == '"' || *s == '\\') {
      fputc('\\', f);
      fputc(*s++, f);
    } else if (*s < 0x20) {
      fprintf(f, "\\u%04x", *s++);
    } else {
      fwrite(s, 1, n, f);
      s += n;
    }
  }
  fputc('"', f);
}

/* Microseconds with the nanoseconds as a fraction: the unit the format expects, no precision
 * lost. */
static void ds__json_us(FILE *f, uint64_t ns) {
  fprintf(f, "%llu.%03u", (unsigned long long)(ns / 1000), (unsigned)(ns % 1000));
}

static void ds__json_event(FILE *f, const ds__trace_event *e, long pid, long tid) {
  fprintf(f, ",\n{\"ph\":\"%c\",\"ts\":", e->phase);
  ds__json_us(f, e->ts_ns);
  fprintf(f, ",\"pid\":%ld,\"tid\":%ld", pid, tid);
  if (e->phase == 'E') {
    fputc('}', f);
    return;
  }
  fputs(",\"cat\":", f);
  ds__json_string(f, e->cat);
  fputs(",\"name\":", f);
  ds__json_string(f, e->name);
  if (e->phase == 'X') {
    fputs(",\"dur\":", f);
    ds__json_us(f, e->arg);
  } else if (e->phase == 'i') {
    fputs(",\"s\":\"t\"", f);
  } else if (e->phase == 'C') {
    double v;
    memcpy(&v, &e->arg, sizeof v);
    if (isfinite(v))
      fprintf(f, ",\"args\":{\"value\":%.17g}", v);
    else
      fputs(",\"args\":{\"value\":null}", f); /* JSON has no NaN or infinity */
  }
  fputc('}', f);
}

static void ds__json_metadata(FILE *f, const char *what, long pid, long tid, const char *name) {
  fprintf(f, ",\n{\"ph\":\"M\",\"name\":\"%s\",\"pid\":%ld,\"tid\":%ld,\"args\":{\"name\":", what,
          pid, tid);
  ds__json_string(f, name);
  fputs("}}", f);
}

static void ds__json_buffer(FILE *f, const struct ds__trace_buf *b, long pid, uint64_t end_ns) {
  if (!b->head) return; /* no event from this thread in this trace */
  if (b->thread_name[0]) ds__json_metadata(f, "thread_name", pid, b->tid, b->thread_name);
  for (const ds__trace_chunk *c = b->head; c; c = c->next)
    for (uint32_t i = 0; i < c->used; i++) ds__json_event(f, &c->ev[i], pid, b->tid);
  /* Spans still open at stop end there, so viewers and parsers see matched pairs. */
  ds__trace_event close = {.ts_ns = end_ns, .phase = 'E'};
  for (uint32_t k = 0; k < b->depth; k++) ds__json_event(f, &close, pid, b->tid);
}

ds_status ds__trace_write_json(ds_context *ctx, FILE *f, const char *path,
                               struct ds__trace_buf *bufs, uint64_t end_ns) {
  long pid = (long)getpid();
  fputs("{\"traceEvents\":[\n", f);
  /* The process_name record comes first so every later record can start with a comma. */
  fprintf(f, "{\"ph\":\"M\",\"name\":\"process_name\",\"pid\":%ld,\"tid\":0,\"args\":{\"name\":",
          pid);
  ds__json_string(f, ctx->name);
  fputs("}}", f);
  for (const struct ds__trace_buf *b = bufs; b; b = b->next) ds__json_buffer(f, b, pid, end_ns);
  fprintf(f,
          "\n],\n\"displayTimeUnit\":\"ns\",\n\"otherData\":{\"library\":\"libdeepseek\","
          "\"version\":\"%s\",\"dropped_events\":%llu}}\n",
          DS_VERSION_STRING, (unsigned long long)ds__load_relaxed(&ctx->trace->dropped));
  int failed = ferror(f);
  int saved_errno = errno;
  if (fclose(f) != 0 && !failed) failed = 1, saved_errno = errno;
  if (failed)
    return ds__error(ctx, DS_ERR_IO, "trace", "writing %s failed: %s", path, strerror(saved_errno));
  return DS_OK;
}
