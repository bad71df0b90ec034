// Shared by the CPU build (cpu_ops.cpp) and the CUDA build (*.cu): torch-free, per-item routines.
// FIELDS_HD marks functions compiled for both host and device, so the CPU tests exercise the same maths; both
// builds inline them (gcc left hash_corners_of out of line, with its rows and weights through memory: the CPU
// hash encoding ran 1.5x slower).
#pragma once
#include <cmath>
#include <cstdint>

#ifdef __CUDACC__
#define FIELDS_HD __host__ __device__ __forceinline__
#else
#define FIELDS_HD inline __attribute__((always_inline))
#endif

namespace fields {

constexpr int kMaxMips = 8;

// A binary occupancy grid (X, Y, Z), x-major, spanning an axis-aligned box, with `n_mips` coarser
// copies: mips[m] has resolution res >> (m + 1), a cell occupied when any of its 8 children is.
struct OccupancyView {
  const uint8_t* cells;
  const uint8_t* mips[kMaxMips];
  int n_mips;
  int res[3];
  float lo[3];
  float hi[3];
  float scale[3];      // res / (hi - lo), computed in float as the PyTorch twin does
  float cell_size[3];  // (hi - lo) / res
};

// Cell of a point, clamped into the grid (positions outside read the nearest boundary cell).
FIELDS_HD void grid_cell(const OccupancyView& g, const float p[3], int cell[3]) {
  for (int a = 0; a < 3; ++a) {
    float v = (p[a] - g.lo[a]) * g.scale[a];
    long long c = (long long)v;  // truncation toward zero, like torch's .long()
    c = c < 0 ? 0 : c;
    c = c > g.res[a] - 1 ? g.res[a] - 1 : c;
    cell[a] = (int)c;
  }
}

FIELDS_HD bool grid_occupied(const OccupancyView& g, const int cell[3]) {
  return g.cells[((long long)cell[0] * g.res[1] + cell[1]) * g.res[2] + cell[2]] != 0;
}

// Whether the level-`level` ancestor (level 0: the cell itself) of a fine cell is occupied.
FIELDS_HD bool ancestor_occupied(const OccupancyView& g, const int cell[3], int level) {
  if (level == 0) return grid_occupied(g, cell);
  const long long r1 = g.res[1] >> level, r2 = g.res[2] >> level;
  return g.mips[level - 1][((long long)(cell[0] >> level) * r1 + (cell[1] >> level)) * r2 + (cell[2] >> level)] != 0;
}

}  // namespace fields
