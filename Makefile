# One command each: `make demo` and `make test` build their own virtual
# environment on a fresh machine, install what they need and run.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip
WAN22 := wan22==2.2.11
LPIPS := lpips==0.1.4
DISTS := dists-pytorch==0.1
# The test extras pin torch==2.13.0, for the reference implementations only (CPU). Where the
# package index would give a multi-GB CUDA build, take PyTorch's CPU wheels:
#   make test TORCH_INDEX=https://download.pytorch.org/whl/cpu
TORCH_INDEX ?=
TORCH_PIP := $(if $(TORCH_INDEX),--extra-index-url $(TORCH_INDEX),)

.PHONY: demo test test-all venv-base venv-test venv-demo venv-eval clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(PIP) install -q --upgrade pip

venv-demo: $(BIN)/python
	$(PIP) install -q -e ".[demo]"

# The tpu extra brings libtpu, so the tests compile for TPU topologies (tests/test_fit.py).
# wan22 (the official Wan code) must be installed without its dependencies:
# they pin a CUDA torch and packages that do not build here. lpips and dists-pytorch
# are installed the same way: the metrics read only their shipped weights (the tests
# also run dists-pytorch's own code, with a stand-in for torchvision).
venv-test: $(BIN)/python
	$(PIP) install -q $(TORCH_PIP) -e ".[test,tpu]"
	$(PIP) install -q --no-deps $(WAN22) $(LPIPS) $(DISTS)

venv-eval: $(BIN)/python
	$(PIP) install -q -e ".[demo,eval]"
	$(PIP) install -q --no-deps $(LPIPS) $(DISTS)

demo: venv-demo
	$(BIN)/gvc demo --out demo_out

# JAX_PLATFORMS=cpu: with libtpu installed, JAX would otherwise try (and fail) to start a TPU
# backend in every process and print libtpu's warnings; compiling for a TPU topology
# (tests/test_fit.py) does not need one.
test: venv-test
	JAX_PLATFORMS=cpu $(BIN)/python -m pytest -q -p no:cacheprovider --durations=15

test-all: venv-test
	$(BIN)/python -m pytest -q -m "" --durations=15

clean:
	rm -rf $(VENV) demo_out
