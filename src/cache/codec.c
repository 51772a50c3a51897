/* L2 value encoding: fp32 -> bf16 narrowing (opt-in, lossy), a byte shuffle that groups the
 * k-th byte of every element (exponents together compress better), then lz4 or zstd. */
#include <lz4.h>
#include <string.h>
#include <zstd.h>

#include "codec.h"

static void ds__shuffle(const uint8_t *src, uint8_t *dst, size_t len, size_t esz) {
  size_t n = len / esz;
  for (size_t b = 0; b < esz; b++)
    for (size_t i = 0; i < n; i++) dst[b * n + i] = src[i * esz + b];
  memcpy(dst + n * esz, src + n * esz, len - n * esz);
}

static void ds__unshuffle(const uint8_t *src, uint8_t *dst, size_t len, size_t esz) {
  size_t n = len / esz;
  for (size_t b = 0; b < esz; b++)
    for (size_t i = 0; i < n; i++) dst[i * esz + b] = src[b * n + i];
  memcpy(dst + n * esz, src + n * esz, len - n * esz);
}

/* Round to nearest even; NaNs stay NaN (quiet bit forced). */
static uint16_t ds__f32_to_bf16(uint32_t u) {
  if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40u);
  return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

ds_status ds__codec_encode(ds_context *ctx, const ds__codec_cfg *cfg, const void *src, size_t len,
                           void **out, size_t *out_len, uint32_t *enc) {
  const uint8_t *in = src;
  uint8_t *tmp = NULL, *tmp2 = NULL;
  size_t n = len;
  *enc = 0;
  size_t esz = 4;
  if (cfg->bf16 && len % 4 == 0 && len > 0) {
    tmp = ds__alloc(ctx, len / 2);
    if (!tmp) return DS_ERR_NO_MEMORY;
    for (size_t i = 0; i < len / 4; i++) {
      uint32_t u;
      memcpy(&u, in + 4 * i, 4);
      uint16_t h = ds__f32_to_bf16(u);
      memcpy(tmp + 2 * i, &h, 2);
    }
    in = tmp;
    n = len / 2;
    esz = 2;
    *enc |= DS__ENC_BF16;
  }
  if (cfg->shuffle && n >= 2 * esz) {
    tmp2 = ds__alloc(ctx, n);
    if (!tmp2) {
      ds__free(ctx, tmp);
      return DS_ERR_NO_MEMORY;
    }
    ds__shuffle(in, tmp2, n, esz);
    in = tmp2;
    *enc |= DS__ENC_SHUFFLE;
  }
  size_t bound = cfg->zstd ? ZSTD_compressBound(n) : (size_t)LZ4_compressBound((int)n);
  uint8_t *dst = ds__alloc(ctx, bound > n ? bound : n ? n : 1);
  size_t clen = 0;
  if (dst && n > 0 && !cfg->none) {
    if (cfg->zstd) {
      clen = ZSTD_compress(dst, bound, in, n, cfg->level);
      if (ZSTD_isError(clen)) clen = 0;
    } else if (n <= (size_t)LZ4_MAX_INPUT_SIZE) {
      clen = (size_t)LZ4_compress_default((const char *)in, (char *)dst, (int)n, (int)bound);
    }
  }
  if (dst && (clen == 0 || clen >= n)) {
    if (n) memcpy(dst, in, n);
    clen = n;
    *enc |= DS__ENC_RAW;
  } else if (dst && cfg->zstd) {
    *enc |= DS__ENC_ZSTD;
  }
  ds__free(ctx, tmp);
  ds__free(ctx, tmp2);
  if (!dst) return DS_ERR_NO_MEMORY;
  *out = dst;
  *out_len = clen;
  return DS_OK;
}

ds_status ds__codec_decode(ds_context *ctx, uint32_t enc, const void *src, size_t slen, void *dst,
                           size_t len) {
  size_t n = (enc & DS__ENC_BF16) ? len / 2 : len, esz = (enc & DS__ENC_BF16) ? 2 : 4;
  int staged = (enc & (DS__ENC_BF16 | DS__ENC_SHUFFLE)) != 0;
  uint8_t *a = staged ? ds__alloc(ctx, n ? n : 1) : dst;
  if (!a) return DS_ERR_NO_MEMORY;
  ds_status st = DS_OK;
  if (enc & DS__ENC_RAW) {
    if (slen != n) st = DS_ERR_CORRUPT;
    else if (n) memcpy(a, src, n);
  } else if (enc & DS__ENC_ZSTD) {
    size_t r = ZSTD_decompress(a, n, src, slen);
    if (ZSTD_isError(r) || r != n) st = DS_ERR_CORRUPT;
  } else {
    int r = LZ4_decompress_safe(src, (char *)a, (int)slen, (int)n);
    if (r < 0 || (size_t)r != n) st = DS_ERR_CORRUPT;
  }
  if (st == DS_OK && staged) {
    uint8_t *b = a;
    uint8_t *c2 = NULL;
    if (enc & DS__ENC_SHUFFLE) {
      c2 = (enc & DS__ENC_BF16) ? ds__alloc(ctx, n ? n : 1) : dst;
      if (!c2) st = DS_ERR_NO_MEMORY;
      else ds__unshuffle(a, c2, n, esz);
      b = c2;
    }
    if (st == DS_OK && (enc & DS__ENC_BF16)) {
      uint8_t *d = dst;
      for (size_t i = 0; i < n / 2; i++) {
        uint16_t h;
        memcpy(&h, b + 2 * i, 2);
        uint32_t u = (uint32_t)h << 16;
        memcpy(d + 4 * i, &u, 4);
      }
    }
    if (c2 && c2 != dst) ds__free(ctx, c2);
  }
  if (staged) ds__free(ctx, a);
  return st;
}
