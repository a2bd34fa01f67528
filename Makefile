# The two commands a new machine needs: `make demo` and `make test`. Each sets up .venv on first use.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip -q --disable-pip-version-check
STAMP := $(VENV)/.installed

.PHONY: demo test bench bench-cv models phantom clean-venv slicer-deps

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip setuptools wheel
	# CPU torch from this machine's disk (a bare `torch` would pull a multi-GB CUDA build).
	$(PIP) install torch==2.13.0 "numpy>=1.24" versioneer
	# pyradiomics is a source build that needs numpy at build time.
	$(PIP) install --no-build-isolation "pyradiomics>=3.0.1"
	$(PIP) install -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/onfh demo

test: $(STAMP)
	$(PY) -m pytest -q -p no:cacheprovider Testing

bench: $(STAMP)
	$(VENV)/bin/onfh bench

bench-cv: $(STAMP)  # adds the ≈ 11 min survival CV of a seed-000-sized cohort to bench/results.*
	$(VENV)/bin/onfh bench --cv --only cv

slicer-deps: $(STAMP)  # which requirements have CPython 3.12 wheels on Linux, Windows, macOS (needs the index)
	$(PY) Resources/slicer_deps.py

models: $(STAMP)
	$(VENV)/bin/onfh models build --out ONFHAssist/Resources/Models

clean-venv:
	rm -rf $(VENV)
