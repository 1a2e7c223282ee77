# syntax=docker/dockerfile:1
# The llm-router controller image: `llm-router serve` (ext_proc gRPC + admin HTTP) and `llm-router envoy-config`.
# Neither Envoy nor llama.cpp is in here: they run from their official images next to it.
#   docker build -t llm-router .                      # the controller (default target)
#   docker build --target modelgen -t llm-router-modelgen .  # + the tiny-model generator (docker-compose.yml)
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS wheel
WORKDIR /src
COPY pyproject.toml README.md ./
COPY extproc ./extproc
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

FROM ${PYTHON_IMAGE} AS runtime
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    LLM_ROUTER_CONFIG=/etc/llm-router/router.yaml
COPY --from=wheel /wheels /wheels
# /srv/envoy: where `llm-router envoy-config` writes the bootstrap into a shared volume (owned by the app user).
# With the tracing extra: observability.tracing.otlpEndpoint works in the image. The wheel is this project's
# own, built above; its dependencies are bounded by its own metadata.
# xds-protos ships an old copy of opentelemetry/proto/*: opentelemetry-proto's own files are put back last.
# hadolint ignore=DL3013
RUN for wheel in /wheels/*.whl; do pip install --no-cache-dir "${wheel}[tracing]"; done \
    && OTEL_PROTO="$(python -c 'import importlib.metadata as m; print(m.version("opentelemetry-proto"))')" \
    && pip install --no-cache-dir --force-reinstall --no-deps "opentelemetry-proto==${OTEL_PROTO}" \
    && rm -rf /wheels \
    && groupadd --system --gid 10001 llm-router \
    && useradd --system --uid 10001 --gid 10001 --home-dir /nonexistent --no-create-home \
        --shell /usr/sbin/nologin llm-router \
    && mkdir -p /etc/llm-router /srv/envoy \
    && chown 10001:10001 /srv/envoy
COPY docker/healthcheck.py docker/generate_model.py docker/mesh_patches.py /usr/local/lib/llm-router/
WORKDIR /tmp
USER 10001:10001

# One-shot: writes the local stack's tiny GGUF model(s) into a volume (same pins as pyproject's `local` extra).
FROM runtime AS modelgen
USER 0:0
RUN pip install --no-cache-dir "gguf>=0.17" "numpy>=1.26" \
    && mkdir -p /models \
    && chown 10001:10001 /models
USER 10001:10001
ENTRYPOINT ["python", "/usr/local/lib/llm-router/generate_model.py"]
CMD ["--config", "/etc/llm-router/router.yaml", "--dir", "/models"]

# The controller (last stage: the default target).
FROM runtime AS controller
EXPOSE 50051 8081
HEALTHCHECK --interval=10s --timeout=3s --start-period=15s --retries=3 \
    CMD ["python", "/usr/local/lib/llm-router/healthcheck.py"]
ENTRYPOINT ["llm-router"]
CMD ["serve", "--config", "/etc/llm-router/router.yaml"]
