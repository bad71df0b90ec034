// Bilinear lookup in feature planes with grid_sample's semantics (align_corners=True, border padding),
// one point on one plane: the four corner cells and their weights. The PyTorch twin is
// fields/grids.py: sample_planes_torch (F.grid_sample).
#pragma once
#include "common.h"

namespace fields {

// The cell columns x0 <= x1 and rows y0 <= y1 around (u, v) and the fractions fx, fy of the way to x1, y1.
// u runs along the width W, v along the height H, both in [-1, 1]; coordinates outside are clamped to the
// border. The low corner stays at most W - 2 (H - 2), so that a point on the last cell's edge weighs it
// fully through the high corner; a plane one cell wide (a TensoRF line) has x0 = x1 and fx = 0.
struct BilinearCells {
  int x0, x1, y0, y1;
  float fx, fy;
};

FIELDS_HD BilinearCells bilinear_cells(float u, float v, int height, int width) {
  float x = (u + 1.0f) * 0.5f * (float)(width - 1);
  float y = (v + 1.0f) * 0.5f * (float)(height - 1);
  x = fminf(fmaxf(x, 0.0f), (float)(width - 1));
  y = fminf(fmaxf(y, 0.0f), (float)(height - 1));
  BilinearCells b;
  b.x0 = (int)floorf(x);
  b.y0 = (int)floorf(y);
  b.x0 = b.x0 > width - 2 ? (width > 1 ? width - 2 : 0) : b.x0;
  b.y0 = b.y0 > height - 2 ? (height > 1 ? height - 2 : 0) : b.y0;
  b.x1 = b.x0 + 1 < width ? b.x0 + 1 : b.x0;
  b.y1 = b.y0 + 1 < height ? b.y0 + 1 : b.y0;
  b.fx = x - (float)b.x0;
  b.fy = y - (float)b.y0;
  return b;
}

// The four corner cells (indexed y * W + x) of (u, v) and their weights (see bilinear_cells).
FIELDS_HD void plane_corners(float u, float v, int height, int width, int64_t cells[4], float weights[4]) {
  const BilinearCells b = bilinear_cells(u, v, height, width);
  cells[0] = (int64_t)b.y0 * width + b.x0;
  cells[1] = (int64_t)b.y0 * width + b.x1;
  cells[2] = (int64_t)b.y1 * width + b.x0;
  cells[3] = (int64_t)b.y1 * width + b.x1;
  weights[0] = (1.0f - b.fx) * (1.0f - b.fy);
  weights[1] = b.fx * (1.0f - b.fy);
  weights[2] = (1.0f - b.fx) * b.fy;
  weights[3] = b.fx * b.fy;
}

}  // namespace fields
