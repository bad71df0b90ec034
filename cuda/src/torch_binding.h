// What the two torch bindings (cpu_ops.cpp, cuda_ops.cpp) use of torch: at::Tensor with its operators, the
// factories they call, ATen's parallel_for, and pybind11 with torch's tensor casters. <torch/extension.h> would
// bring the whole C++ frontend: 42 s of a 2-core machine's compile time for an empty module, 15 s with these.
#pragma once
#include <ATen/Parallel.h>
#include <ATen/TensorOperators.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/cumsum.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/empty_like.h>
#include <ATen/ops/zeros.h>
#include <ATen/ops/zeros_like.h>
#include <torch/csrc/utils/pybind.h>
