# The two commands a new machine needs: `make demo` and `make test`. Each sets up .venv on first use.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip -q --disable-pip-version-check
STAMP := $(VENV)/.installed

.PHONY: demo test bench bench-cv models phantom clean-venv slicer-deps web test-web web-system

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

# ONFH Assist Web: Debian's EGL (VTK renders offscreen, no X) and chromium (the browser test), each installed
# only when dpkg does not list it as installed; then the web extra (trame-slicer, Playwright) into .venv.
WEB_DEBS := libegl1 libegl-mesa0 libgl1-mesa-dri libgbm1 chromium
WEB_STAMP := $(VENV)/.installed-web

web-system:
	@missing="$$(for p in $(WEB_DEBS); do dpkg -s $$p 2>/dev/null | grep -q '^Status: install ok installed' || echo $$p; done)"; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:" $$missing; \
	  sudo=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  install="$$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing"; \
	  $$install || { $$sudo apt-get update -q && $$install; }; \
	fi

$(WEB_STAMP): $(STAMP)
	$(PIP) install -e ".[dev,web]"
	touch $(WEB_STAMP)

web: web-system $(WEB_STAMP)  # serves on 127.0.0.1 (a free port, printed); `.venv/bin/onfh web --help` for more
	$(VENV)/bin/onfh web

test-web: web-system $(WEB_STAMP)  # the browser test: fails (never skips) when something it needs is missing
	ONFH_WEB_REQUIRED=1 $(PY) -m pytest -q -p no:cacheprovider Testing/test_web.py

bench: $(STAMP)
	$(VENV)/bin/onfh bench

bench-cv: $(STAMP)  # adds the ≈ 11 min survival CV of a seed-000-sized cohort to bench/results.*
	$(VENV)/bin/onfh bench --cv --only cv

slicer-deps: $(STAMP)  # which requirements have CPython 3.12 wheels on Linux, Windows, macOS (needs the index)
	$(PY) Resources/slicer_deps.py

models: $(STAMP)  # the statistics files beside the weights are tied to them by sha256: rebuild them too
	$(VENV)/bin/onfh models build --out ONFHAssist/Resources/Models
	$(PY) Resources/make_ood_stats.py
	$(PY) Resources/make_survival_reference.py

clean-venv:
	rm -rf $(VENV)
