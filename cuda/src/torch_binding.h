// What the two torch bindings (cpu_binding.cpp, cuda_ops.cpp) use of torch: torch_tensor.h, and pybind11 with
// torch's tensor casters. <torch/extension.h> would bring the whole C++ frontend: 42 s of a 2-core machine's
// compile time for an empty module, 15 s with these (nearly half of them pybind11's).
#pragma once
#include <torch/csrc/utils/pybind.h>

#include "torch_tensor.h"
