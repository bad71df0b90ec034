// Tensor -> plain-struct views shared by the CPU kernels (cpu_ops.cpp) and the CUDA binding (cuda_ops.cpp).
#pragma once
#include "torch_tensor.h"

#include <vector>

#include "common.h"
#include "hash_encode.h"
#include "march.h"

namespace fields {

// The occupancy grid (X, Y, Z) bool, its mip pyramid and its box, on the grid's device; the box is read on the host.
inline OccupancyView occupancy_view(const at::Tensor& binary, const std::vector<at::Tensor>& mips,
                                    const at::Tensor& aabb) {
  TORCH_CHECK(binary.dim() == 3 && binary.scalar_type() == at::kBool && binary.is_contiguous(),
              "binary must be a contiguous bool grid (X, Y, Z)");
  TORCH_CHECK((int)mips.size() <= kMaxMips, "at most ", kMaxMips, " mip levels");
  auto box = aabb.to(at::kCPU, at::kFloat).contiguous();
  const float* b = box.data_ptr<float>();
  OccupancyView g;
  g.cells = reinterpret_cast<const uint8_t*>(binary.data_ptr<bool>());
  g.n_mips = (int)mips.size();
  for (int m = 0; m < g.n_mips; ++m) {
    for (int a = 0; a < 3; ++a)
      TORCH_CHECK(mips[m].size(a) << (m + 1) == binary.size(a), "mip ", m, " must halve the grid ", m + 1, " times");
    TORCH_CHECK(mips[m].scalar_type() == at::kBool && mips[m].is_contiguous() &&
                    mips[m].device() == binary.device(),
                "mips must be contiguous bool grids on the grid's device");
    g.mips[m] = reinterpret_cast<const uint8_t*>(mips[m].data_ptr<bool>());
  }
  for (int a = 0; a < 3; ++a) {
    g.res[a] = (int)binary.size(a);
    g.lo[a] = b[a];
    g.hi[a] = b[a + 3];
    g.scale[a] = (float)g.res[a] / (b[a + 3] - b[a]);
    g.cell_size[a] = (b[a + 3] - b[a]) / (float)g.res[a];
  }
  return g;
}

// Cascaded grids (levels, X, Y, Z) bool and their boxes (levels, 6), read on the host.
inline CascadeView cascade_view(const at::Tensor& binaries, const at::Tensor& aabbs) {
  TORCH_CHECK(binaries.dim() == 4 && binaries.scalar_type() == at::kBool && binaries.is_contiguous(),
              "binaries must be contiguous bool grids (levels, X, Y, Z)");
  TORCH_CHECK(binaries.size(0) <= kMaxCascades && aabbs.size(0) == binaries.size(0) && aabbs.size(1) == 6,
              "at most ", kMaxCascades, " cascades, one box (6,) each");
  auto boxes = aabbs.to(at::kCPU, at::kFloat).contiguous();
  const float* b = boxes.data_ptr<float>();
  CascadeView g;
  g.cells = reinterpret_cast<const uint8_t*>(binaries.data_ptr<bool>());
  g.levels = (int)binaries.size(0);
  for (int a = 0; a < 3; ++a) g.res[a] = (int)binaries.size(a + 1);
  for (int k = 0; k < g.levels; ++k)
    for (int a = 0; a < 3; ++a) {
      g.lo[k][a] = b[6 * k + a];
      g.hi[k][a] = b[6 * k + a + 3];
      g.scale[k][a] = (float)g.res[a] / (g.hi[k][a] - g.lo[k][a]);
    }
  return g;
}

// The hash grid's level layout from host tensors (L,) each; levels below n_dense are dense.
inline std::vector<HashLevel> hash_levels(const at::Tensor& scales, const at::Tensor& resolutions,
                                          const at::Tensor& rows, const at::Tensor& offsets, int64_t n_dense) {
  std::vector<HashLevel> levels(scales.size(0));
  for (int64_t l = 0; l < scales.size(0); ++l)
    levels[l] = HashLevel{scales[l].item<float>(), (uint32_t)resolutions[l].item<int64_t>(),
                          (uint32_t)rows[l].item<int64_t>(), (uint32_t)offsets[l].item<int64_t>(), l < n_dense};
  return levels;
}

}  // namespace fields
