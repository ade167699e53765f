# One image for every component; `--target` (or OPENMEMORY_TARGET) picks what a container runs.
# Build from the repository root: docker build -t openmemory .
FROM python:3.11.14-slim-bookworm AS build
ENV UV_PYTHON_DOWNLOADS=never UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy
RUN pip install --no-cache-dir uv==0.13.8
WORKDIR /app
COPY pyproject.toml uv.lock ./
COPY packages/core/pyproject.toml packages/core/README.md packages/core/
# The workspace's other members are named by the lock; their metadata lets it resolve, and the sync
# below leaves them out of the image (benchmarks and test support are not the product).
COPY packages/testing/pyproject.toml packages/testing/README.md packages/testing/
COPY bench/pyproject.toml bench/README.md bench/
COPY services/gateway/pyproject.toml services/gateway/README.md services/gateway/
COPY services/ingest/pyproject.toml services/ingest/README.md services/ingest/
COPY services/search/pyproject.toml services/search/README.md services/search/
COPY services/admin/pyproject.toml services/admin/README.md services/admin/
COPY packages/core/src packages/core/src
COPY services/gateway/src services/gateway/src
COPY services/ingest/src services/ingest/src
COPY services/search/src services/search/src
COPY services/admin/src services/admin/src
RUN uv sync --frozen --no-dev --no-editable --no-install-package openmemory-bench --no-install-package openmemory-testing

FROM python:3.11.14-slim-bookworm
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
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 CMD ["openmemory", "healthcheck"]
ENTRYPOINT ["openmemory", "run"]
