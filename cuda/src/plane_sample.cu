#include "cuda_api.h"
#include "plane_sample.h"

namespace fields {
namespace {

constexpr int kThreads = 128;

// One thread per point: all planes and channels.
__global__ void plane_sample_forward_kernel(const float* planes, const float* coords, int64_t n, int n_planes,
                                            int n_chan, int height, int width, bool sum_planes, float* out) {
  int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
  if (i >= n) return;
  const int64_t area = (int64_t)height * width;
  int64_t cells[4];
  float w[4];
  for (int p = 0; p < n_planes; ++p) {
    const float* uv = coords + (p * n + i) * 2;
    plane_corners(uv[0], uv[1], height, width, cells, w);
    const float* channel = planes + (int64_t)p * n_chan * area;
    float* dst = out + (sum_planes ? i : p * n + i) * n_chan;
    for (int c = 0; c < n_chan; ++c, channel += area) {
      const float v = w[0] * channel[cells[0]] + w[1] * channel[cells[1]] + w[2] * channel[cells[2]] +
                      w[3] * channel[cells[3]];
      dst[c] = (sum_planes && p > 0) ? dst[c] + v : v;
    }
  }
}

// One thread per (point, plane); atomics add every point's share.
__global__ void plane_sample_backward_kernel(const float* grad_out, const float* coords, int64_t n, int n_chan,
                                             int height, int width, bool sum_planes, float* grad_planes) {
  int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
  if (i >= n) return;
  const int p = blockIdx.y;
  const int64_t area = (int64_t)height * width;
  int64_t cells[4];
  float w[4];
  const float* uv = coords + (p * n + i) * 2;
  plane_corners(uv[0], uv[1], height, width, cells, w);
  const float* g = grad_out + (sum_planes ? i : p * n + i) * n_chan;
  float* channel = grad_planes + (int64_t)p * n_chan * area;
  for (int c = 0; c < n_chan; ++c, channel += area)
    for (int k = 0; k < 4; ++k) atomicAdd(channel + cells[k], w[k] * g[c]);
}

unsigned blocks_for(int64_t n) { return (unsigned)((n + kThreads - 1) / kThreads); }

}  // namespace

void launch_plane_sample_forward(const float* planes, const float* coords, int64_t n, int n_planes, int n_chan,
                                 int height, int width, bool sum_planes, float* out, cudaStream_t stream) {
  if (n == 0) return;
  plane_sample_forward_kernel<<<blocks_for(n), kThreads, 0, stream>>>(planes, coords, n, n_planes, n_chan, height,
                                                                      width, sum_planes, out);
}

void launch_plane_sample_backward(const float* grad_out, const float* coords, int64_t n, int n_planes, int n_chan,
                                  int height, int width, bool sum_planes, float* grad_planes, cudaStream_t stream) {
  if (n == 0) return;
  plane_sample_backward_kernel<<<dim3(blocks_for(n), n_planes), kThreads, 0, stream>>>(
      grad_out, coords, n, n_chan, height, width, sum_planes, grad_planes);
}

}  // namespace fields
