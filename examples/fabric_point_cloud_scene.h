/* The synthetic scene of the point cloud examples (fabric_point_cloud.c, the split with a
 * barrier; fabric_point_cloud_graph.c, the task graph): spheres on a ground plane, point i
 * computed from a hash of i, so any part of the cloud can be generated anywhere, in any order. */
#ifndef FABRIC_POINT_CLOUD_SCENE_H
#define FABRIC_POINT_CLOUD_SCENE_H

#include <math.h>
#include <stdint.h>

static uint64_t scene_mix(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

/* The k-th 21-bit field of h as a float in [0, 1). */
static float scene_unit(uint64_t h, int k) {
  return (float)((h >> (k * 21)) & 0x1FFFFF) / 2097152.0f;
}

/* Point i of the cloud into p[0..2]. */
static void make_point(uint64_t i, float *p) {
  uint64_t h = scene_mix(i);
  float a = scene_unit(h, 0), b = scene_unit(h, 1), c = scene_unit(h, 2);
  if (i % 5 == 0) { /* ground plane */
    p[0] = 4.0f * a - 2.0f, p[1] = -1.0f, p[2] = 4.0f * b - 2.0f;
    return;
  }
  static const float centre[4][4] = {{0, 0, 0, 0.8f}, {1.2f, -0.5f, 0.6f, 0.5f},
                                     {-1.1f, -0.4f, -0.7f, 0.6f}, {0.3f, 0.9f, -1.0f, 0.3f}};
  const float *s = centre[(i / 5) % 4];
  float theta = 6.2831853f * a, z = 2.0f * b - 1.0f, rr = sqrtf(1.0f - z * z);
  float rad = s[3] * (0.98f + 0.04f * c); /* a slightly rough surface */
  p[0] = s[0] + rad * rr * cosf(theta), p[1] = s[1] + rad * rr * sinf(theta), p[2] = s[2] + rad * z;
}

#endif /* FABRIC_POINT_CLOUD_SCENE_H */
