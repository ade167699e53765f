# One image for every component; `--target` (or OPENMEMORY_TARGET) picks what a container runs.
# Build from the repository root: docker build -t openmemory .
# `make deploy-check` replays the build stage without Docker (deploy/image.py): it runs the stage's
# COPY, ENV, WORKDIR and `uv sync` lines, so keep the stage to those.
FROM python:3.11.14-slim-bookworm AS build
ENV UV_PYTHON_DOWNLOADS=never UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy
RUN pip install --no-cache-dir uv==0.13.9
WORKDIR /app
# Layer 1, the third-party dependencies, from the lock and the members' metadata only: editing a
# source file (or a README, which no pyproject reads) does not reinstall them. `--locked` refuses a
# uv.lock that no longer matches the pyprojects, so it needs every member's, the benchmarks' and the
# test support's too; those two are not the product and are not installed.
COPY pyproject.toml uv.lock ./
COPY packages/core/pyproject.toml packages/core/
COPY packages/testing/pyproject.toml packages/testing/
COPY bench/pyproject.toml bench/
COPY services/gateway/pyproject.toml services/gateway/
COPY services/ingest/pyproject.toml services/ingest/
COPY services/search/pyproject.toml services/search/
COPY services/admin/pyproject.toml services/admin/
RUN uv sync --locked --no-dev --no-editable --no-install-workspace \
    --no-install-package openmemory-bench --no-install-package openmemory-testing
# Layer 2, the product's own packages, installed as wheels: the venv needs nothing under /app.
COPY packages/core/src packages/core/src
COPY services/gateway/src services/gateway/src
COPY services/ingest/src services/ingest/src
COPY services/search/src services/search/src
COPY services/admin/src services/admin/src
RUN uv sync --locked --no-dev --no-editable \
    --no-install-package openmemory-bench --no-install-package openmemory-testing

FROM python:3.11.14-slim-bookworm
# The MCP Registry checks that the image it lists carries the entry's name (server.json).
LABEL io.modelcontextprotocol.server.name="io.github.openmemory/openmemory"
# FalkorDB's module (the embedded graph store of single mode) links against libgomp.
RUN apt-get update && apt-get install -y --no-install-recommends libgomp1 && rm -rf /var/lib/apt/lists/*
RUN groupadd --system --gid 10001 openmemory \
 && useradd --system --uid 10001 --gid openmemory --home-dir /data --shell /usr/sbin/nologin openmemory \
 && mkdir -p /data && chown openmemory:openmemory /data
COPY --from=build --chown=root:root /app/.venv /app/.venv
ENV PATH=/app/.venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    OPENMEMORY_DATA_DIR=/data \
    OPENMEMORY_TARGET=all \
    OPENMEMORY_LOG_FORMAT=json \
    OPENMEMORY_GATEWAY_HOST=0.0.0.0 \
    OPENMEMORY_ADMIN_HOST=0.0.0.0 \
    OPENMEMORY_OPS_HOST=0.0.0.0
USER 10001:10001
WORKDIR /data
VOLUME ["/data"]
EXPOSE 8765 3000 8766
# GET /healthz with the standard library only (`openmemory healthcheck` would import the whole CLI
# every 15 s). The port follows OPENMEMORY_TARGET as the runtime's `health_port` does: the gateway's
# for `all` and `gateway`, the dashboard's for `admin`, the ops port for the workers (compose runs
# every service from this image). OPENMEMORY_HEALTHCHECK_URL overrides it, e.g. when `--target` is
# given as an argument instead. No proxy: the probe is for this container's loopback.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 CMD ["python", "-c", "import os, urllib.request as r; e = os.environ.get; t = {n.strip() for n in e('OPENMEMORY_TARGET', 'all').split(',')}; p = e('OPENMEMORY_GATEWAY_PORT', '8765') if t & {'all', 'gateway'} else e('OPENMEMORY_ADMIN_PORT', '3000') if 'admin' in t else e('OPENMEMORY_OPS_PORT', '8766'); r.build_opener(r.ProxyHandler({})).open(e('OPENMEMORY_HEALTHCHECK_URL') or f'http://127.0.0.1:{p}/healthz', timeout=3)"]
ENTRYPOINT ["openmemory", "run"]
