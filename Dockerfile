# syntax=docker/dockerfile:1
#
# healthscore worker image.
#
#   docker build -t healthscore .
#   docker run --rm -e HEALTHSCORE_KAFKA_BOOTSTRAP=... -e HEALTHSCORE_REDIS_URL=... healthscore
#
# Stage 1 builds wheels of the project and of its runtime dependencies (no dev
# extras); stage 2 installs them offline into a clean python:3.11-slim and runs
# as an unprivileged user. All configuration comes from HEALTHSCORE_* variables.

ARG PYTHON_IMAGE=python:3.11-slim

# --------------------------------------------------------------------------- builder
FROM ${PYTHON_IMAGE} AS builder

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

WORKDIR /src

# .dockerignore lets only the packaging inputs through (pyproject.toml, README,
# worker/, schemas/), so this copy is small and cache-friendly.
COPY . .

# The project's wheel plus wheels of every runtime dependency, for an offline
# install in the final stage.
RUN pip wheel --wheel-dir /wheels . \
    && ls -l /wheels

# --------------------------------------------------------------------------- runtime
FROM ${PYTHON_IMAGE} AS runtime

LABEL org.opencontainers.image.title="healthscore" \
      org.opencontainers.image.description="Live customer health scores: Kafka in, tier-change alerts out." \
      org.opencontainers.image.licenses="Apache-2.0"

# The metrics endpoint binds loopback by default; in a container that cannot be
# scraped (nor probed by a health check from outside), so the image binds all.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HEALTHSCORE_METRICS_HOST=0.0.0.0

# Fixed uid/gid so volume permissions and runAsNonRoot policies are predictable.
RUN groupadd --system --gid 10001 healthscore \
    && useradd --system --uid 10001 --gid healthscore \
       --create-home --home-dir /home/healthscore --shell /usr/sbin/nologin healthscore

# Install from the builder's wheels only (no index): no dev extras, no build
# tools, no wheel files left behind in a layer. pip compiles the bytecode here,
# as root, so the unprivileged runtime never needs to write it. The version is
# pinned by construction: /wheels holds exactly one build of the project.
# hadolint ignore=DL3013
RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    pip install --no-index --find-links=/wheels --root-user-action=ignore healthscore \
    && pip check

USER 10001:10001
WORKDIR /home/healthscore

# Prometheus /metrics, and the /healthz and /readyz probes (HEALTHSCORE_METRICS_PORT).
EXPOSE 9464

# Healthy while /readyz answers 200: the worker holds its partitions, Kafka and Redis
# answered recently and consumption is not paused by an outage (urlopen raises on a
# 503). Skipped (always healthy) when the endpoint is turned off (port 0).
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, sys, urllib.request; port = os.environ.get('HEALTHSCORE_METRICS_PORT') or '9464'; port == '0' and sys.exit(0); urllib.request.urlopen(f'http://127.0.0.1:{port}/readyz', timeout=4).close()"]

ENTRYPOINT ["healthscore"]
CMD ["worker"]
