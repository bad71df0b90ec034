// Bilinear lookup in feature planes with grid_sample's semantics (align_corners=True, border padding),
// one point on one plane: the four corner cells and their weights. The PyTorch twin is
// fields/grids.py: sample_planes_torch (F.grid_sample).
#pragma once
#include "common.h"

namespace fields {

// u along the width W, v along the height H, both in [-1, 1]; cells indexed y * W + x. Coordinates
// outside are clamped to the border. The low corner stays at most W - 2 (H - 2), so that a point on
// the last cell's edge weighs it fully through the high corner; a plane one cell wide (a TensoRF
// line) uses one corner twice with weight 0 on the second.
FIELDS_HD void plane_corners(float u, float v, int height, int width, int64_t cells[4], float weights[4]) {
  float x = (u + 1.0f) * 0.5f * (float)(width - 1);
  float y = (v + 1.0f) * 0.5f * (float)(height - 1);
  x = fminf(fmaxf(x, 0.0f), (float)(width - 1));
  y = fminf(fmaxf(y, 0.0f), (float)(height - 1));
  int x0 = (int)floorf(x), y0 = (int)floorf(y);
  x0 = x0 > width - 2 ? (width > 1 ? width - 2 : 0) : x0;
  y0 = y0 > height - 2 ? (height > 1 ? height - 2 : 0) : y0;
  const int x1 = x0 + 1 < width ? x0 + 1 : x0;
  const int y1 = y0 + 1 < height ? y0 + 1 : y0;
  const float fx = x - (float)x0, fy = y - (float)y0;
  cells[0] = (int64_t)y0 * width + x0;
  cells[1] = (int64_t)y0 * width + x1;
  cells[2] = (int64_t)y1 * width + x0;
  cells[3] = (int64_t)y1 * width + x1;
  weights[0] = (1.0f - fx) * (1.0f - fy);
  weights[1] = fx * (1.0f - fy);
  weights[2] = (1.0f - fx) * fy;
  weights[3] = fx * fy;
}

}  // namespace fields
