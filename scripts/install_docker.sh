#!/usr/bin/env bash
# Install the Docker engine from Debian (docker.io + docker-compose) if absent, start dockerd in the
# background and wait until `docker info` answers; also the compose v2 plugin (see install_compose_v2).
# Idempotent: an engine that already answers is left alone.
# Env: DOCKERD_LOG (default /var/log/dockerd.log), DOCKER_WAIT_S (default 120).
set -euo pipefail

log=${DOCKERD_LOG:-/var/log/dockerd.log}
wait_s=${DOCKER_WAIT_S:-120}

# Compose v2 (`docker compose`): bookworm ships only docker-compose 1.29 (kept at /usr/bin/docker-compose);
# trixie's package carries the v2 CLI plugin, a static Go binary that runs here. Only that binary is taken.
install_compose_v2() {
    local plugin=/usr/libexec/docker/cli-plugins/docker-compose member=./usr/libexec/docker/cli-plugins/docker-compose
    local url=${COMPOSE_V2_DEB_URL:-http://deb.debian.org/debian/pool/main/d/docker-compose/}
    [[ "$url" == */ ]] && url+=docker-compose_2.26.1-4_amd64.deb
    docker compose version >/dev/null 2>&1 && return 0
    echo "install_docker: installing the compose v2 plugin from $url"
    local tmp attempt listing
    tmp=$(mktemp -d)
    for attempt in 1 2 3 4 5; do
        if curl -fsSL --connect-timeout 10 --max-time 300 -o "$tmp/compose.deb" "$url" \
            && listing=$(dpkg-deb -c "$tmp/compose.deb") && grep -q " $member\$" <<<"$listing"; then
            dpkg-deb --fsys-tarfile "$tmp/compose.deb" | tar -x -C "$tmp" "$member"
            install -D -m 0755 "$tmp/$member" "$plugin"
            rm -rf "$tmp"
            echo "install_docker: $(docker compose version)"
            return 0
        fi
        echo "install_docker: compose v2 download or check failed (attempt $attempt/5)" >&2
        rm -f "$tmp/compose.deb"
        sleep $((attempt * 3))
    done
    rm -rf "$tmp"
    echo "install_docker: WARNING: no compose v2 plugin (compose v2 tests fail under CI=true)" >&2
}

if docker info >/dev/null 2>&1; then
    install_compose_v2
    echo "install_docker: engine already running"
    exit 0
fi

if ! command -v dockerd >/dev/null 2>&1; then
    echo "install_docker: installing docker.io docker-compose from Debian"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends docker.io docker-compose iptables ca-certificates >/dev/null
fi

install_compose_v2

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
