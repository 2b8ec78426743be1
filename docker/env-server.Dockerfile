# The resrl env server. Build context: the wheelhouse (scripts/build_wheelhouse.sh), e.g.
#   docker build -f docker/env-server.Dockerfile --build-arg BASE_IMAGE=resrl/base:bookworm dist/wheelhouse
# Installs resrl without its training dependencies (no torch/transformers/vllm): only what the servers import.
ARG BASE_IMAGE=python:3.12-slim
FROM ${BASE_IMAGE}

ENV PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/opt/resrl/bin:$PATH

COPY . /wheels
RUN python3 -m venv /opt/resrl \
    && pip install --no-index --find-links /wheels -r /wheels/server-requirements.txt \
    && pip install --no-index --no-deps /wheels/resrl-*.whl \
    && rm -rf /wheels \
    && python -c "import sys, resrl_servers.env.app; assert 'torch' not in sys.modules, 'torch leaked in'" \
    && (getent passwd resrl >/dev/null || useradd --system --no-create-home --shell /usr/sbin/nologin resrl)

USER resrl
EXPOSE 8000
HEALTHCHECK --interval=5s --timeout=3s --start-period=30s --retries=5 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2)"]
CMD ["resrl", "serve", "env", "--host", "0.0.0.0", "--port", "8000"]
