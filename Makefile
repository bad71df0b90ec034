# Set-up and the two everyday jobs. Each target installs what it needs, so both work on a fresh machine.
PYTHON ?= python3
# A CPU build of PyTorch; on this machine kind pip takes a local wheel for this exact version.
# GPU users: install a CUDA build of torch first (https://pytorch.org), then `make install TORCH_SPEC=`.
TORCH_SPEC ?= torch==2.13.0

.PHONY: install kernels lego test test-fast bench

# System libraries: open3d's wheel links libusb-1.0, which a fresh Debian machine lacks.
install:
	@ldconfig -p | grep -q libusb-1.0 || { S=$$([ "$$(id -u)" = 0 ] || echo sudo); \
		$$S apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$S apt-get install -y -qq libusb-1.0-0; }
	@if [ -n "$(TORCH_SPEC)" ] && ! $(PYTHON) -c "import torch" 2>/dev/null; then \
		$(PYTHON) -m pip install -q "$(TORCH_SPEC)"; fi
	$(PYTHON) -m pip install -q -e ".[test]"

# Optional: build the kernels now instead of on first use (30-90 s on 2 cores).
kernels: install
	$(PYTHON) -m nfields.cuda.build

# The kernels first, so that no training minute goes to building them.
lego: kernels
	fields train --scene lego --time-budget 10 --threads 2

# Everything, the slow end-to-end runs on real data included: what CI runs.
# lpips without its torchvision (--no-deps keeps the installed torch): the LPIPS tests run the real package on a
# stand-in network; scoring real LPIPS needs the `lpips` extra (see README).
test: install
	$(PYTHON) -m pip install -q --no-deps lpips==0.1.4
	$(PYTHON) -m pytest -q

# The unit tests only (no `slow` marks): a few minutes on 2 cores.
test-fast: install
	$(PYTHON) -m pytest -q -m "not slow"

bench: install
	$(PYTHON) benchmarks/lego_time_budget.py --fields hashgrid mlp --minutes 10 --threads 2
