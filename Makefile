# The two commands of the README: `make main` (the main job) and `make test` (what CI runs).
# Everything is installed into a project-local virtual environment, so a fresh machine needs only python3.
VENV ?= .venv
PY := $(VENV)/bin/python
# Idle OpenMP threads sleep instead of spinning: on a CPU shared with other jobs, spinning threads made small
# training steps up to ~20x slower on this project's shared 2-core machines (measured: 0.5 s vs 12 s per step).
export OMP_WAIT_POLICY ?= PASSIVE
# The main job's run directory (one per `make main`).
MAIN_RUN := runs/main-$(shell date +%Y%m%d-%H%M%S)

.PHONY: install install-main main test lint timm-contract-all

# Two stamps: the main job needs bixt with the `train` extra only; the tests add every other extra (timm, torchvision,
# Triton, ONNX, ...), which is most of the download. So `make main` on a fresh machine does not wait for them, and
# `make test` after it installs only what is missing.
install-main: $(VENV)/.installed-main
install: $(VENV)/.installed

# Not --quiet: pip prints a line per package it collects and installs (download bars on a terminal). The install
# takes minutes on a fresh machine, and a silent one looks hung.
$(VENV)/.installed-main: pyproject.toml constraints.txt
	@echo "[1/2] creating the virtual environment $(VENV)/ and installing bixt (editable) with the train extra"
	python3 -m venv $(VENV)
	$(PY) -m pip install -c constraints.txt -e ".[train]"
	@echo "[2/2] done: $(VENV)/bin/bixt and $(VENV)/bin/python are ready for the main job"
	touch $@

$(VENV)/.installed: $(VENV)/.installed-main
	@echo "installing every extra for the tests, torch pinned by constraints.txt (a few minutes on a fresh machine)"
	$(PY) -m pip install -c constraints.txt -e ".[dev]"
	touch $@

main: install-main
	$(PY) -m bixt data fetch fashion-mnist
	$(PY) -m bixt train -c configs/fashion-mnist.yaml --output_dir $(dir $(MAIN_RUN)) --run_name $(notdir $(MAIN_RUN))
	$(PY) -m bixt eval $(MAIN_RUN)

test: install
	$(PY) -m ruff check bixt tests
	# Real data for the tests marked network_data (a few seconds; a second run downloads nothing).
	$(PY) -m bixt data fetch fashion-mnist mnist imdb austen
	# timm's own model tests (tests/test_models.py of the installed timm's sdist), run on bixt models by the conftest
	$(PY) tests/timm_contract/fetch_timm_tests.py
	$(PY) -m pytest -q -m "not triton"
	# The Triton kernel's cases, on the CPU under Triton's interpreter, which Triton switches on at import only.
	TRITON_INTERPRET=1 $(PY) -m pytest -q -m triton

# timm's model tests on every bixt model registered in timm, not only the representative ones of `make test`.
timm-contract-all: install
	$(PY) tests/timm_contract/fetch_timm_tests.py
	BIXT_TIMM_MODELS=all $(PY) -m pytest -q tests/timm_contract

lint: install
	$(PY) -m ruff check bixt tests
	$(PY) -m ruff format --check bixt tests
