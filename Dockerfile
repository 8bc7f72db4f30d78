# skewwatch sidecar image.
#   docker build -t skewwatch:0.1.0 .
#   docker run --rm -p 9108:9108 -v $PWD/skewwatch.yaml:/etc/skewwatch/skewwatch.yaml:ro skewwatch:0.1.0
# Stage 1 builds wheels for skewwatch and every dependency (with a compiler, for any sdist);
# stage 2 installs only those wheels on a clean slim base and runs as an unprivileged user.
ARG PYTHON_IMAGE=python:3.11.11-slim-bookworm
# Extras installed in the image. `fast` (pyarrow, ~170 MB installed) reads busy topics' batches as
# columns with Arrow's JSON reader - less CPU per event for a sidecar that must keep up with its
# model's topic - and lets `skewwatch baseline` / `replay` read Parquet inside the image. For the
# smallest image: --build-arg SKEWWATCH_EXTRAS= (the typed decoder then reads every batch).
ARG SKEWWATCH_EXTRAS=fast

FROM ${PYTHON_IMAGE} AS build
ARG SKEWWATCH_EXTRAS
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# dependency metadata first: the wheel layer is rebuilt only when pyproject.toml changes
COPY pyproject.toml setup.py README.md ./
COPY detector ./detector
RUN python -m pip wheel --wheel-dir /wheels ".[${SKEWWATCH_EXTRAS}]"
# the C scanner is optional for a pip install without a compiler, not for the image: fail the build
# if the wheel came out without it (the fallback decoders would cost ~4x the CPU per event)
RUN python -c "import glob, sys, zipfile; w, = glob.glob('/wheels/skewwatch-*.whl'); sys.exit(0 if any('/_scan.' in n and n.endswith('.so') for n in zipfile.ZipFile(w).namelist()) else 'skewwatch wheel built without its C scanner')"

FROM ${PYTHON_IMAGE} AS runtime
ARG SKEWWATCH_EXTRAS
LABEL org.opencontainers.image.title="skewwatch" \
      org.opencontainers.image.description="Sidecar that watches a live ML model through Kafka: training/serving skew, drift, outcomes" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN groupadd --system --gid 10001 skewwatch \
 && useradd --system --uid 10001 --gid skewwatch --home-dir /var/lib/skewwatch --create-home \
            --shell /usr/sbin/nologin skewwatch \
 && mkdir -p /etc/skewwatch \
 && chown skewwatch:skewwatch /etc/skewwatch
COPY --from=build /wheels /wheels
RUN python -m pip install --no-index --find-links=/wheels "skewwatch[${SKEWWATCH_EXTRAS}]" \
 && rm -rf /wheels
WORKDIR /var/lib/skewwatch
USER 10001:10001
# /metrics, /healthz (liveness), /readyz (readiness): never dependent on the Kafka broker
EXPOSE 9108
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
  CMD ["python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:9108/healthz', timeout=4).status == 200 else 1)"]
ENTRYPOINT ["skewwatch"]
CMD ["run", "--config", "/etc/skewwatch/skewwatch.yaml"]
