/* Internal: the L2 tier's value encoding (optional bf16 narrowing, optional byte shuffle, then
 * lz4 or zstd; stored raw when that does not shrink it). */
#ifndef DS_CACHE_CODEC_H
#define DS_CACHE_CODEC_H

#include <stddef.h>
#include <stdint.h>

#include "internal.h"

#define DS__ENC_RAW 0x1u     /* stored bytes are the (transformed) value, not compressed */
#define DS__ENC_SHUFFLE 0x2u
#define DS__ENC_BF16 0x4u
#define DS__ENC_ZSTD 0x8u

typedef struct ds__codec_cfg {
  int zstd;  /* 1: zstd, 0: lz4 */
  int none;  /* 1: store as is */
  int level; /* zstd level */
  int shuffle, bf16;
} ds__codec_cfg;

/* Encodes src into a new buffer (*out, from ds__alloc) of *out_len bytes; *enc gets the
 * DS__ENC_* flags. DS_ERR_NO_MEMORY on failure. */
ds_status ds__codec_encode(ds_context *ctx, const ds__codec_cfg *cfg, const void *src, size_t len,
                           void **out, size_t *out_len, uint32_t *enc);
/* Decodes into dst, which has room for the original len bytes. DS_ERR_CORRUPT on bad data. */
ds_status ds__codec_decode(ds_context *ctx, uint32_t enc, const void *src, size_t slen, void *dst,
                           size_t len);

#endif
