// Instant-NGP hash-grid encoding, one point at one level: the eight corner rows and trilinear weights.
// Same index maths as the PyTorch twin (fields/hash_encoding.py: corner_indices_and_weights):
// position x * scale + 0.5; dense levels index x + y res + z res^2 (mod rows); hashed levels
// (x * 1 ^ y * 2654435761 ^ z * 805459861) mod 2^32 masked to the power-of-two row count.
#pragma once
#include "common.h"

namespace fields {

struct HashLevel {
  float scale;
  uint32_t resolution;
  uint32_t rows;    // table rows of the level
  uint32_t offset;  // first row of the level
  bool dense;
};

// Corners ordered (dx, dy, dz) with dz fastest. Dense is the level's kind, known to the caller: the CPU loops
// instantiate each kind, so that neither the per-corner choice nor a modulo (dense rows only wrap at the
// grid's far faces) costs in the inner loop.
template <bool Dense>
FIELDS_HD void hash_corners_of(const float x[3], const HashLevel& level, uint32_t rows[8], float weights[8]) {
  const uint32_t primes[3] = {1u, 2654435761u, 805459861u};
  uint32_t term[3][2];
  float w[3][2];
  uint32_t stride = 1;
  for (int a = 0; a < 3; ++a) {
    float pos = x[a] * level.scale + 0.5f;
    float fl = floorf(pos);
    float frac = pos - fl;
    uint32_t base = (uint32_t)(int32_t)fl;
    uint32_t mult = Dense ? stride : primes[a];
    term[a][0] = base * mult;
    term[a][1] = term[a][0] + mult;
    w[a][0] = 1.0f - frac;
    w[a][1] = frac;
    stride *= level.resolution;
  }
  for (int dx = 0; dx < 2; ++dx) {
    for (int dy = 0; dy < 2; ++dy) {
      float wxy = w[0][dx] * w[1][dy];
      for (int dz = 0; dz < 2; ++dz) {
        int c = 4 * dx + 2 * dy + dz;
        uint32_t row;
        if (Dense) {
          row = term[0][dx] + term[1][dy] + term[2][dz];
          if (row >= level.rows) row %= level.rows;
        } else {
          row = (term[0][dx] ^ term[1][dy] ^ term[2][dz]) & (level.rows - 1);
        }
        rows[c] = row + level.offset;
        weights[c] = wxy * w[2][dz];
      }
    }
  }
}

// The level's kind chosen at run time: the CUDA kernels' form (one thread per point and level).
FIELDS_HD void hash_corners(const float x[3], const HashLevel& level, uint32_t rows[8], float weights[8]) {
  if (level.dense)
    hash_corners_of<true>(x, level, rows, weights);
  else
    hash_corners_of<false>(x, level, rows, weights);
}

}  // namespace fields
