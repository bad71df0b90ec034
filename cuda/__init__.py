"""Native kernels (CUDA and multithreaded CPU) and the one module that picks them: `dispatch`.

Sources live in `src/`: per-item routines shared by both builds (`*.h`), the CPU build (`cpu_ops.cpp`, bound
in `cpu_binding.cpp`), torch-free CUDA kernels (`*.cu`) and their thin binding (`cuda_ops.cpp`). `build` compiles
them on first use; every operation has a pure-PyTorch twin elsewhere (renderers/torch_ops.py, fields/hash_encoding.py).
"""
