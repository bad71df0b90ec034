// TensoRF's vector-matrix (VM) products at one point: pair m multiplies plane m, looked up bilinearly at the
// point's (kPlaneU[m], kPlaneV[m]) coordinates, with line m, looked up linearly at its kLineAxis[m] coordinate,
// channel by channel; both with grid_sample's semantics (plane_sample.h). Factors may have any strides (the
// CPU driver runs a faster loop when channels are innermost, PyTorch's channels_last). The PyTorch twin is
// fields/grids.py: vm_products_torch.
#pragma once
#include "plane_sample.h"

namespace fields {

// TensoRF's pairing of axes (fields/grids.py: PLANE_AXES, LINE_AXES): planes XY, XZ, YZ, lines Z, Y, X.
constexpr int kPlaneU[3] = {0, 0, 1};
constexpr int kPlaneV[3] = {1, 2, 2};
constexpr int kLineAxis[3] = {2, 1, 0};

// A plane (C, H, W) or a line (C, L, 1) with its strides in floats.
struct FactorView {
  float* data;
  int64_t channel_stride, row_stride, col_stride;
  int height, width;
};

// Where pair m reads at one point: the plane's four corners and the line's two, as offsets into their data
// (channel 0), and their weights.
struct PairCorners {
  int64_t plane[4], line[2];
  float plane_weight[4], line_weight[2];
};

FIELDS_HD PairCorners pair_corners(const FactorView& plane, const FactorView& line, const float* point, int m) {
  PairCorners k;
  const BilinearCells p = bilinear_cells(point[kPlaneU[m]], point[kPlaneV[m]], plane.height, plane.width);
  const int64_t r0 = p.y0 * plane.row_stride, r1 = p.y1 * plane.row_stride;
  const int64_t c0 = p.x0 * plane.col_stride, c1 = p.x1 * plane.col_stride;
  k.plane[0] = r0 + c0;
  k.plane[1] = r0 + c1;
  k.plane[2] = r1 + c0;
  k.plane[3] = r1 + c1;
  k.plane_weight[0] = (1.0f - p.fx) * (1.0f - p.fy);
  k.plane_weight[1] = p.fx * (1.0f - p.fy);
  k.plane_weight[2] = (1.0f - p.fx) * p.fy;
  k.plane_weight[3] = p.fx * p.fy;
  const BilinearCells l = bilinear_cells(0.0f, point[kLineAxis[m]], line.height, 1);
  k.line[0] = l.y0 * line.row_stride;
  k.line[1] = l.y1 * line.row_stride;
  k.line_weight[0] = 1.0f - l.fy;
  k.line_weight[1] = l.fy;
  return k;
}

// The plane's and the line's value at the corners k in the channel that starts `channel` floats in.
FIELDS_HD float plane_value(const float* plane, const PairCorners& k, int64_t channel) {
  const float* p = plane + channel;
  return k.plane_weight[0] * p[k.plane[0]] + k.plane_weight[1] * p[k.plane[1]] + k.plane_weight[2] * p[k.plane[2]] +
         k.plane_weight[3] * p[k.plane[3]];
}

FIELDS_HD float line_value(const float* line, const PairCorners& k, int64_t channel) {
  return k.line_weight[0] * line[channel + k.line[0]] + k.line_weight[1] * line[channel + k.line[1]];
}

}  // namespace fields
