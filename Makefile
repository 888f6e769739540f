# azgo: every command a user or CI runs.
#
#   make run         broker + learner + self-play as local processes (data in ./data; Ctrl-C stops, rerun resumes)
#   make status      the worker table from the broker (STATUS_ARGS='--watch')
#   make config      print the resolved configuration (configs/azgo.yaml + AZGO_* overrides)
#   make test        the whole suite, set-up included (.venv, GNU Go)
#   make check       lint (ruff) + tests: run before every commit
#   make bench       benchmarks (build/bench/*.json); make bench-gpu on a GPU host
#   make gtp         a GTP engine on stdin/stdout (GTP_ARGS='--model FILE --visits 400')
#   make clean       remove build outputs (keeps .venv, data/ and keys/)
#   make distclean   clean + remove .venv
#
# Variables: PYTHON (interpreter that creates .venv), GNUGO (GNU Go binary used by the
# tests), PIP_TORCH_ARGS (extra pip arguments for torch, e.g.
# '--index-url https://download.pytorch.org/whl/cpu' to get the CPU build from PyTorch).

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
CORE := libs/azgo_core
RUNTIME := libs/azgo_runtime
TOOLS := libs/azgo_tools
SERVICES := services/broker services/learner services/selfplay services/evaluator
PACKAGES := $(CORE) $(RUNTIME) $(TOOLS) $(SERVICES)
CONFIG ?= configs/azgo.yaml
STATUS_ARGS ?=
RUN_ARGS ?=
# Pinned exactly, and installed before the package: any looser spec lets pip pick a
# CUDA build of torch (gigabytes) where a local CPU wheel is available.
TORCH_SPEC := torch==2.13.0
PIP_TORCH_ARGS ?=
GNUGO ?= /usr/games/gnugo
GTP_ARGS ?=

# Numba's on-disk cache of compiled kernels. Its default (__pycache__ beside each source
# file) works for the editable install, but under make we keep it in build/ so the source
# tree stays clean, one `make clean` drops stale kernels, and a read-only source tree (a
# container) still caches. Outside make, numba's default applies.
export NUMBA_CACHE_DIR ?= $(CURDIR)/build/numba-cache

# Stamps: reinstall when a pyproject changes.
VENV_STAMP := $(VENV)/.azgo-installed
DEV_STAMP := $(VENV)/.azgo-dev-installed
BENCH_STAMP := $(VENV)/.azgo-bench-installed

TEST_PATHS := $(CORE)/tests tests


.PHONY: venv venv-module $(VENV) dev test test-tools check lint gnugo bench bench-core bench-gpu gtp run status config docs clean distclean

venv $(VENV): $(VENV_STAMP)

$(VENV_STAMP): $(addsuffix /pyproject.toml,$(PACKAGES))
	@echo "==> creating $(VENV) and installing azgo (core, runtime, tools, services)"
	@test -x $(PY) || $(MAKE) --no-print-directory venv-module
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install $(PIP_TORCH_ARGS) '$(TORCH_SPEC)'
	$(PIP) install -e '$(CORE)[test]' $(addprefix -e ,$(RUNTIME) $(TOOLS) $(SERVICES))
	touch $@

dev: $(DEV_STAMP)

$(DEV_STAMP): $(VENV_STAMP)
	$(PIP) install -e '$(CORE)[test,dev]'
	touch $@

# OpenSpiel's Go: bench-core's reference for legal masks, and a second rules check in the tests
$(BENCH_STAMP): $(VENV_STAMP)
	$(PIP) install -e '$(CORE)[test,bench]'
	touch $@

# Debian splits `python3 -m venv` (ensurepip) into python3-venv: installed like GNU Go below
# when missing (as root, with apt-get), else a message that names the package.
venv-module:
	@if $(PYTHON) -c 'import ensurepip, venv' >/dev/null 2>&1; then \
		true; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "==> $(PYTHON) cannot create a venv: installing python3-venv with apt-get"; \
		apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3-venv; \
	else \
		echo "error: $(PYTHON) -m venv needs the venv and ensurepip modules." >&2; \
		echo "       Install them as root: apt-get install python3-venv, or pass PYTHON=/path/to/python3." >&2; \
		exit 1; \
	fi
	@$(PYTHON) -c 'import ensurepip, venv' || { echo "error: $(PYTHON) still has no venv module after the install" >&2; exit 1; }

# GNU Go is the tests' reference opponent for the GTP engine.
gnugo:
	@if [ -x "$(GNUGO)" ]; then \
		echo "==> GNU Go: $(GNUGO)"; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "==> installing GNU Go with apt-get"; \
		apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends gnugo; \
	else \
		echo "error: GNU Go not found at $(GNUGO) (the tests need it)." >&2; \
		echo "       Install it as root: apt-get install gnugo, or pass GNUGO=/path/to/gnugo." >&2; \
		exit 1; \
	fi
	@test -x "$(GNUGO)" || { echo "error: $(GNUGO) still missing after install" >&2; exit 1; }

# The dashboard test drives Debian's chromium through chromium-driver; the monitoring tests run
# promtool (Debian's prometheus). Installed like GNU Go when missing.
test-tools:
	@missing=""; \
	command -v chromedriver >/dev/null 2>&1 || missing="$$missing chromium chromium-driver"; \
	command -v promtool >/dev/null 2>&1 || missing="$$missing prometheus"; \
	if [ -z "$$missing" ]; then \
		true; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "==> installing$$missing with apt-get"; \
		apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $$missing; \
	else \
		echo "error: the tests need$$missing: install them as root with apt-get install$$missing" >&2; \
		exit 1; \
	fi

test: $(VENV_STAMP) $(BENCH_STAMP) gnugo test-tools
	AZGO_GNUGO='$(GNUGO)' $(PY) -m pytest $(TEST_PATHS)

lint: $(DEV_STAMP)
	$(VENV)/bin/ruff check .

check: lint test

bench-core: $(BENCH_STAMP)
	@mkdir -p build/bench
	$(PY) benchmarks/bench_core.py --out build/bench/core.json

# the network and self-play on a CUDA GPU (on a machine without one it says so and exits 0)
bench-gpu: $(VENV_STAMP)
	@mkdir -p build/bench
	$(PY) benchmarks/bench_gpu.py --out build/bench/gpu.json

bench: bench-core bench-broker

gtp: $(VENV_STAMP)
	@$(VENV)/bin/azgo gtp $(GTP_ARGS)

run: $(VENV_STAMP)
	@$(VENV)/bin/azgo run --config '$(CONFIG)' $(RUN_ARGS)

status: $(VENV_STAMP)
	@$(VENV)/bin/azgo status $(STATUS_ARGS)

config: $(VENV_STAMP)
	@$(VENV)/bin/azgo config --config '$(CONFIG)'

# docs/config-reference.md is generated from the settings models (a test compares them)
docs: $(VENV_STAMP)
	@$(VENV)/bin/azgo config --reference > docs/config-reference.md

clean:
	rm -rf build .pytest_cache .ruff_cache
	find . -path ./$(VENV) -prune -o -type d -name __pycache__ -prune -exec rm -rf {} +
	find . -path ./$(VENV) -prune -o -type d -name '*.egg-info' -prune -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV)

# More targets, one file per theme: mk/eval.mk (match, report), mk/containers.mk (images, keys,
# compose-up/down), mk/deploy.mk (deploy, undeploy, doctor, restart, logs).
include $(sort $(wildcard mk/*.mk))
