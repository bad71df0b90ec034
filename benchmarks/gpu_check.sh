#!/usr/bin/env bash
# One prepared run for a machine with an NVIDIA GPU: build the CUDA kernels, run the parity tests,
# the kernel benchmark, and (when lego is on the data root) a 2-minute lego training run.
#   bash benchmarks/gpu_check.sh [OUT_DIR]
set -uo pipefail
out=${1:-${OUT:-runs/gpu_check}}
mkdir -p "$out"
{
  nvidia-smi --query-gpu=name,memory.total,clocks.max.memory --format=csv
  python -m pip install -q -e ".[test]"
  python -m nfields.cuda.build
  fields doctor
  python -m pytest -q tests/cuda/test_kernels.py tests/cuda/test_cuda_sources.py
  python benchmarks/kernels.py --device cuda --rays 65536 --points 1048576
  python - <<'PY'
import torch, time
x = torch.empty(1 << 28, dtype=torch.uint8, device="cuda"); y = torch.empty_like(x)
for _ in range(3): y.copy_(x)
torch.cuda.synchronize(); t = time.perf_counter()
for _ in range(20): y.copy_(x)
torch.cuda.synchronize(); s = (time.perf_counter() - t) / 20
print(f"device copy bandwidth: {2 * x.numel() / s / 1e9:.0f} GB/s (read + write)")
PY
  if python -c "from nfields.datasets.data_root import resolve_scene_dir; resolve_scene_dir('lego')" 2>/dev/null; then
    fields train --scene lego --time-budget 2 --device cuda --output "$out/lego-2min"
  else
    echo "lego not on the data root: training run skipped"
  fi
} 2>&1 | tee "$out/gpu_check.log"
