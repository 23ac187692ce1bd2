# The two commands of the README: `make main` (the main job) and `make test` (what CI runs).
# Everything is installed into a project-local virtual environment, so a fresh machine needs only python3.
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: install main test lint

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml constraints.txt
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet -c constraints.txt -e ".[dev]"
	touch $@

main: install
	$(PY) -m bixt models --flops

test: install
	$(PY) -m ruff check bixt tests
	# Real data for the tests marked network_data (a few seconds; a second run downloads nothing).
	$(PY) -m bixt data fetch fashion-mnist mnist imdb austen
	$(PY) -m pytest -q

lint: install
	$(PY) -m ruff check bixt tests
	$(PY) -m ruff format --check bixt tests
