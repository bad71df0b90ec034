// The real spherical-harmonics basis of a unit direction, degrees 1-4, in tiny-cuda-nn's order and constants: the
// view encoding of the colour networks. Twin: fields/encodings.py spherical_harmonics (the same float expressions).
#pragma once
#include "common.h"

namespace fields {

// out[0, degree^2) = the basis at (x, y, z).
FIELDS_HD void sh_basis(float x, float y, float z, int degree, float* out) {
  out[0] = 0.28209479177387814f;
  if (degree < 2) return;
  out[1] = -0.48860251190291987f * y;
  out[2] = 0.48860251190291987f * z;
  out[3] = -0.48860251190291987f * x;
  if (degree < 3) return;
  const float xy = x * y, yz = y * z, xz = x * z, x2 = x * x, y2 = y * y, z2 = z * z;
  out[4] = 1.0925484305920792f * xy;
  out[5] = -1.0925484305920792f * yz;
  out[6] = 0.94617469575755997f * z2 - 0.31539156525251999f;
  out[7] = -1.0925484305920792f * xz;
  out[8] = 0.54627421529603959f * (x2 - y2);
  if (degree < 4) return;
  out[9] = 0.59004358992664352f * y * (-3.0f * x2 + y2);
  out[10] = 2.8906114426405538f * xy * z;
  out[11] = 0.45704579946446572f * y * (1.0f - 5.0f * z2);
  out[12] = 0.3731763325901154f * z * (5.0f * z2 - 3.0f);
  out[13] = 0.45704579946446572f * x * (1.0f - 5.0f * z2);
  out[14] = 1.4453057213202769f * z * (x2 - y2);
  out[15] = 0.59004358992664352f * x * (-x2 + 3.0f * y2);
}

}  // namespace fields
