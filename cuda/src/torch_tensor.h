// What the kernels' tensor-side code uses of torch: at::Tensor with its operators, the factories it calls and
// ATen's parallel_for, without pybind11 (which alone is most of torch_binding.h's compile time).
#pragma once
#include <ATen/Parallel.h>
#include <ATen/TensorOperators.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/cumsum.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/empty_like.h>
#include <ATen/ops/zeros.h>
#include <ATen/ops/zeros_like.h>
