# Two commands on a fresh machine: `make demo` and `make test`.
# The CPU wheel of PyTorch is pinned only here; GPU users override it, e.g.
#   make test TORCH_SPEC="torch==2.13.0 --index-url https://download.pytorch.org/whl/cu126"
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
SPANDREL_SPEC ?= spandrel==0.4.2
PY := $(VENV)/bin/python
STAMP := $(VENV)/.nafft-installed

.PHONY: install demo test lint clean ablation-gpu default-model-gpu

$(PY):
	$(PYTHON) -m venv $(VENV)

# spandrel (a test dependency: the loader of chaiNNer and ComfyUI) declares torchvision, which only two of its
# architectures import (not NAFNet) and which pip would fetch with a CUDA PyTorch: it is installed without
# dependencies; einops, its other one, comes with the dev extras.
$(STAMP): pyproject.toml Makefile | $(PY)
	$(PY) -m pip install --quiet $(TORCH_SPEC)
	$(PY) -m pip install --quiet -e ".[dev]"
	$(PY) -m pip install --quiet --no-deps $(SPANDREL_SPEC)
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(VENV)/bin/nafft demo

test: install
	$(PY) -m pytest -q

# The paired ablation at GPU scale (width 32, 256x256 crops, bf16): four configs x three seeds on synthesised data,
# about 8 minutes of one GPU with the data synthesis and the evaluations; the table, curves and report land in
# runs/ablation-gpu (docs/experiments.md). On a CPU the same command takes days: shrink it as tests/experiments do.
GPU_ABLATION := --configs nafnet-w32 nafft-v2-psnr-w32 nafnet-block-fft-w32 nafnet-fft-loss-w32 --minutes 4.5 \
	--seeds 3 --train-pairs 600 --train-size 256 --test-pairs 24 --val-pairs 6 \
	--set data.batch_size=8 data.num_workers=6 train.amp=bf16 -o runs/ablation-gpu

ablation-gpu: install
	$(VENV)/bin/nafft ablate $(GPU_ABLATION)

# The default model on one GPU: pair synthesis, then at most 7.5 minutes of training warm-started from the bundled
# weights, then its scores (scripts/default_model.sh; docs/default-model.md says how to ship the result).
default-model-gpu: install
	NAFFT_GPU=1 scripts/default_model.sh runs/nafft-photo-gpu

lint: install
	$(VENV)/bin/ruff check src tests benchmarks

clean:
	rm -rf $(VENV) build src/*.egg-info
