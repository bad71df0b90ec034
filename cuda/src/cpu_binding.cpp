// The CPU kernels (cpu_ops.h) bound to Python as the `fields_cpu_kernels` extension. A file of its own so that
// pybind11's heavy headers and the kernels compile in parallel: the CPU build on 2 cores takes 37-39 s, 42-45 s
// with both in cpu_ops.cpp.
#include "cpu_ops.h"
#include "torch_binding.h"

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("march_rays", &fields::cpu::march_rays, "occupancy-grid ray marching to packed samples");
  m.def("march_rays_cascaded", &fields::cpu::march_rays_cascaded, "cone-step marching through cascaded grids");
  m.def("sample_offsets", &fields::cpu::sample_offsets, "per-ray offsets of ray-sorted samples");
  m.def("composite_forward", &fields::cpu::composite_forward, "alpha compositing with early termination");
  m.def("composite_backward", &fields::cpu::composite_backward, "gradients of alpha compositing");
  m.def("termination_round", &fields::cpu::termination_round, "one round of early termination");
  m.def("hash_encode_forward", &fields::cpu::hash_encode_forward, "hash-grid encoding");
  m.def("hash_encode_backward", &fields::cpu::hash_encode_backward, "gradient of the hash table");
  m.def("plane_sample_forward", &fields::cpu::plane_sample_forward, "bilinear feature-plane lookup");
  m.def("plane_sample_backward", &fields::cpu::plane_sample_backward, "gradient of the feature planes");
  m.def("vm_products_forward", &fields::cpu::vm_products_forward, "TensoRF vector-matrix products");
  m.def("vm_products_backward", &fields::cpu::vm_products_backward, "gradients of the TensoRF factors");
  m.def("mlp_forward", &fields::cpu::mlp_forward, "fused ReLU MLP");
  m.def("mlp_backward", &fields::cpu::mlp_backward, "gradients of the fused MLP");
  m.def("mlp_isas", &fields::cpu::mlp_isas, "the fused MLP's instruction-set paths this CPU runs, best first");
  m.def("view_inputs", &fields::cpu::view_inputs, "SH basis of directions, then features: a colour network's input");
  m.def("occupancy_update", &fields::cpu::occupancy_update, "occupancy-grid EMA update and binarisation");
}
