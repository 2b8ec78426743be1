#!/usr/bin/env bash
# Install the Docker engine from Debian (docker.io + docker-compose) if absent, start dockerd in the
# background and wait until `docker info` answers. Idempotent: an engine that already answers is left alone.
# Env: DOCKERD_LOG (default /var/log/dockerd.log), DOCKER_WAIT_S (default 120).
set -euo pipefail

log=${DOCKERD_LOG:-/var/log/dockerd.log}
wait_s=${DOCKER_WAIT_S:-120}

if docker info >/dev/null 2>&1; then
    echo "install_docker: engine already running"
    exit 0
fi

if ! command -v dockerd >/dev/null 2>&1; then
    echo "install_docker: installing docker.io docker-compose from Debian"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends docker.io docker-compose iptables ca-certificates >/dev/null
fi

if ! pgrep -x dockerd >/dev/null 2>&1; then
    echo "install_docker: starting dockerd (log: $log)"
    # its own session: the engine must outlive the shell (or CI step) that started it
    setsid nohup dockerd >"$log" 2>&1 </dev/null &
fi

for _ in $(seq 1 "$wait_s"); do
    if docker info >/dev/null 2>&1; then
        echo "install_docker: engine ready ($(docker version --format '{{.Server.Version}}'))"
        exit 0
    fi
    sleep 1
done
echo "install_docker: dockerd did not answer within ${wait_s}s; last log lines:" >&2
tail -n 30 "$log" >&2 || true
exit 1
