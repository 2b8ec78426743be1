# The resrl sandbox server (runs untrusted code with the local backend inside this container). Build context:
# the wheelhouse (scripts/build_wheelhouse.sh), e.g.
#   docker build -f docker/sandbox-server.Dockerfile --build-arg BASE_IMAGE=resrl/base:bookworm dist/wheelhouse
ARG BASE_IMAGE=python:3.12-slim
FROM ${BASE_IMAGE}

ENV PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/opt/resrl/bin:$PATH RESRL_SANDBOX_BACKEND=local

COPY . /wheels
RUN python3 -m venv /opt/resrl \
    && pip install --no-index --find-links /wheels -r /wheels/server-requirements.txt \
    && pip install --no-index --no-deps /wheels/resrl-*.whl \
    && rm -rf /wheels \
    && python -c "import sys, resrl_servers.sandbox.app; assert 'torch' not in sys.modules, 'torch leaked in'"

EXPOSE 8080
HEALTHCHECK --interval=5s --timeout=3s --start-period=30s --retries=5 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2)"]
CMD ["resrl", "serve", "sandbox", "--host", "0.0.0.0", "--port", "8080", "--backend", "local"]
