#!/usr/bin/env bash
# The real compose test (CI): engine, registry-free base image, wheelhouse, images, then the stack with each
# compose implementation. Run from any directory; needs the project's venv python on PATH.
#   CHECK=full   `up --scale envs=2`, health, a function-calling and a code episode through RemoteEnv (gold
#                solutions must score full reward) on every replica, then teardown
#   CHECK=quick  `up` with one replica, health, one gold function-calling episode, `up --scale envs=2`, both
#                replicas healthy and answering, then teardown (images are reused from the full check)
#   COMPOSE      compose command; unset: the full check with compose v2 (`docker compose`), then the quick
#                check with v1 (`docker-compose`, Debian's 1.29) — both must be installed
#   RESRL_BASE_IMAGE base image (default: the one scripts/build_base_image.sh builds)
#   KEEP_UP=1        leave the stack running
set -euo pipefail
cd "$(dirname "$0")/.."

log() { echo "compose_test: $*" >&2; }
if [[ -z "${COMPOSE:-}" ]]; then
    COMPOSE="docker compose" CHECK=full bash "$0"
    COMPOSE=docker-compose CHECK=quick bash "$0"
    exit 0
fi
check=${CHECK:-full}
[[ "$check" == full || "$check" == quick ]] || { log "CHECK must be full or quick, not '$check'"; exit 2; }
python=${PYTHON:-python}
project=${COMPOSE_PROJECT_NAME:-resrlci}
compose() { $COMPOSE -p "$project" -f compose.yaml "$@"; }
$COMPOSE version >/dev/null 2>&1 || { log "'$COMPOSE' is not installed (see scripts/install_docker.sh)"; exit 1; }

bash scripts/install_docker.sh >&2
export RESRL_BASE_IMAGE=${RESRL_BASE_IMAGE:-$(bash scripts/build_base_image.sh | tail -1)}
base_py=$(docker run --rm "$RESRL_BASE_IMAGE" python3 -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
log "base image $RESRL_BASE_IMAGE (Python $base_py); compose: $COMPOSE ($($COMPOSE version --short)); check: $check"
PYTHON_VERSION=$base_py PYTHON=$python bash scripts/build_wheelhouse.sh >/dev/null

export RESRL_TAG=ci RESRL_ENV_PORTS=${RESRL_ENV_PORTS:-18100-18109} RESRL_SANDBOX_PORT=${RESRL_SANDBOX_PORT:-18080}
teardown() {
    local rc=$?
    if [[ $rc -ne 0 ]]; then compose logs --tail=60 >&2 || true; fi
    if [[ "${KEEP_UP:-0}" != 1 ]]; then compose down -v --remove-orphans >&2 || true; fi
    exit $rc
}
trap teardown EXIT

log "building images"
# Each rebuild moves the tag and leaves the old image dangling (~0.6 GB apiece); remove the ones this build
# replaced, so repeated runs (CI, a developer's loop) do not fill the disk.
previous=$(docker images -q --no-trunc --filter "reference=resrl/*:$RESRL_TAG" | sort -u)
compose build >&2
for id in $previous; do
    if [[ $(docker image inspect --format '{{len .RepoTags}}' "$id" 2>/dev/null) == 0 ]]; then
        docker rmi "$id" >/dev/null 2>&1 || log "kept replaced image $id (still in use)"
    fi
done
wait_healthy() {  # wait_healthy N: N containers of the project report healthy
    local want=$1 ids states healthy deadline=$((SECONDS + 240))
    while true; do
        ids=$(compose ps -q)
        states=$(docker inspect --format '{{.State.Health.Status}}' $ids | sort | uniq -c | xargs)
        healthy=$(docker inspect --format '{{.State.Health.Status}}' $ids | grep -c '^healthy$' || true)
        [[ "$healthy" -eq "$want" ]] && break
        if ((SECONDS > deadline)); then log "not $want healthy in time: $states"; exit 1; fi
        sleep 2
    done
    log "all healthy: $states"
}

replica_urls() {  # the host URL of each env-server replica (1..N)
    local i port
    for i in $(seq 1 "$1"); do
        port=$(compose port --index="$i" envs 8000 | tail -1 | awk -F: '{print $NF}')
        echo "http://127.0.0.1:$port"
    done
}

if [[ "$check" == quick ]]; then
    log "starting sandbox + 1 env server"
    compose up -d >&2
    wait_healthy 2
    url=$(replica_urls 1)
    "$python" - "$url" <<'PY'
"""One gold function-calling episode through RemoteEnv."""
import sys

import resrl
from resrl.client import RemoteEnv

url, env_id = sys.argv[1], "fc/simple"
task = resrl.spec(env_id).load().generate_tasks("test", 1, 3)[0]
local, env = resrl.make(env_id), RemoteEnv(url, env_id)
local.task = task  # renders the gold turns the way a policy would write them
env.reset(options={"task_id": "test/3"})
reward = 0.0
for action in type(local).gold_actions(task):
    _, reward, terminated, truncated, _ = env.step(local.render_action(action))
    if terminated or truncated:
        break
env.close()
assert reward == resrl.spec(env_id).load().max_reward, f"gold scored {reward}"
print(f"compose_test: {url} {env_id}: gold reward {reward}", file=sys.stderr)
PY
    log "scaling to 2 env servers"
    compose up -d --scale envs=2 >&2
    wait_healthy 3
    mapfile -t urls < <(replica_urls 2)
    "$python" - "${urls[@]}" <<'PY'
"""Both replicas answer on their own host ports."""
import sys

import httpx

hosts = set()
for url in sys.argv[1:]:
    assert httpx.get(f"{url}/healthz").json()["status"] == "ok", url
    assert "fc/simple" in {e["id"] for e in httpx.get(f"{url}/v1/envs").json()["envs"]}, url
    hosts.add(url)
assert len(hosts) == 2, hosts
PY
    log "PASS (quick, $COMPOSE): up, health, gold episode, scale to 2, both replicas answer"
    exit 0
fi

log "starting sandbox + 2 env servers with the README's two commands, as written"
(
    unset PYTHON PYTHON_VERSION WHEELHOUSE  # the script's own defaults, as on a newcomer's machine
    export COMPOSE_PROJECT_NAME=$project    # compose.yaml's settings come from the environment (RESRL_*)
    bash scripts/build_wheelhouse.sh >&2 && $COMPOSE up -d --scale envs=2 >&2
)
wait_healthy 3

mapfile -t urls < <(replica_urls 2)
log "env servers at ${urls[*]}"

"$python" - "http://127.0.0.1:$RESRL_SANDBOX_PORT" "${urls[@]}" <<'PY'
"""Gold episodes through RemoteEnv on each replica: function calling and code (code runs in the sandbox)."""
import sys

import httpx

import resrl
from resrl.client import RemoteEnv

sandbox_url, urls = sys.argv[1], sys.argv[2:]
ids = {e["id"] for e in httpx.get(f"{urls[0]}/v1/envs").json()["envs"]}
assert {"fc/simple", "code/function"} <= ids, sorted(ids)


def gold_episode(url: str, env_id: str, task_id: str) -> float:
    local = resrl.make(env_id)  # renders the gold turns the way a policy would write them
    split, seed = task_id.split("/")
    task = resrl.spec(env_id).load().generate_tasks(split, 1, int(seed))[0]
    env = RemoteEnv(url, env_id)
    _, info = env.reset(options={"task_id": task_id})
    assert info["task_id"] == task.id, (info["task_id"], task.id)
    reward, done = 0.0, False
    for action in type(local).gold_actions(task):
        local.task = task
        _, reward, terminated, truncated, _ = env.step(local.render_action(action))
        done = terminated or truncated
        if done:
            break
    env.close()
    assert done, f"{env_id} episode did not end"
    return reward


for url in urls:
    for env_id in ("fc/simple", "code/function"):
        reward = gold_episode(url, env_id, "test/3")
        max_reward = resrl.spec(env_id).load().max_reward
        print(f"compose_test: {url} {env_id}: gold reward {reward} (max {max_reward})", file=sys.stderr)
        assert reward == max_reward, f"{env_id} on {url}: gold scored {reward}, not {max_reward}"
    assert httpx.get(f"{url}/healthz").json()["sessions"] == 0

# the code episodes ran in the sandbox container (RESRL_SANDBOX_URL), not inside the env servers
passed = [ln for ln in httpx.get(f"{sandbox_url}/metrics").text.splitlines() if ln.startswith("resrl_sandbox_jobs_total")]
assert any('status="passed"' in ln and float(ln.split()[-1]) >= len(urls) for ln in passed), passed
print(f"compose_test: sandbox jobs: {passed}", file=sys.stderr)
PY

# sandbox jobs have no network: they reach neither the env servers, nor the sandbox server, nor the host
sandbox_id=$(compose ps -q sandbox)
envs_id=$(compose ps -q envs | head -1)
first_net() { docker inspect --format "{{range .NetworkSettings.Networks}}{{.$1}} {{end}}" "$2" | awk '{print $1}'; }
"$python" - "http://127.0.0.1:$RESRL_SANDBOX_PORT" "$envs_id" "$(first_net IPAddress "$envs_id")" \
    "$(first_net IPAddress "$sandbox_id")" "$(first_net Gateway "$sandbox_id")" <<'PY'
"""Probe the stack's own listeners from a sandbox job and, as the control, from an env-server container."""
import json
import socket
import subprocess
import sys
import threading

import httpx

sandbox_url, envs_id, envs_ip, sandbox_ip, gateway = sys.argv[1:]
health = httpx.get(f"{sandbox_url}/healthz").json()
assert health["ok"] and health["netns"] is True and health["filesystem"] == "private-root", health
# a listener on this machine, on the host's side of the stack's network: the control shows it is reachable
listener = socket.socket()
listener.bind((gateway, 0))
listener.listen(8)
listener.settimeout(0.2)
accepted = []


def watch() -> None:
    while True:
        try:
            accepted.append(listener.accept()[0])
        except TimeoutError:
            continue
        except OSError:
            return


threading.Thread(target=watch, daemon=True).start()
targets = {"envs": [envs_ip, 8000], "envs by name": ["envs", 8000], "sandbox server": [sandbox_ip, 8080],
           "sandbox by name": ["sandbox", 8080], "sandbox loopback": ["127.0.0.1", 8080],
           "host": [gateway, listener.getsockname()[1]]}  # fmt: skip
probe = (
    f"import json, socket\nout = {{}}\nfor name, (host, port) in {json.dumps(targets)}.items():\n"
    "    try:\n        socket.create_connection((host, port), timeout=3).close()\n        out[name] = 'reached'\n"
    "    except OSError as exc:\n        out[name] = f'blocked: {type(exc).__name__}'\nprint(json.dumps(out))\n"
)
control = json.loads(subprocess.run(["docker", "exec", envs_id, "python", "-c", probe], capture_output=True,
                                    text=True, check=True).stdout)  # fmt: skip
assert {control[k] for k in ("envs", "sandbox server", "sandbox by name", "host")} == {"reached"}, control
assert len(accepted) == 1, accepted
job = httpx.post(f"{sandbox_url}/v1/run", json={"code": probe}, timeout=60).json()
assert job["status"] == "passed", job
seen = json.loads(job["stdout"])
assert set(seen) == set(targets) and all(v.startswith("blocked") for v in seen.values()), seen
assert len(accepted) == 1, f"the host listener was reached from a job: {accepted}"
assert job["metadata"]["netns"] is True and job["metadata"]["filesystem"] == "private-root", job["metadata"]
print(f"compose_test: env-server container reaches {sorted(k for k, v in control.items() if v == 'reached')}",
      file=sys.stderr)  # fmt: skip
print(f"compose_test: sandbox jobs have no network: {seen}", file=sys.stderr)
PY
replicas=$(compose ps -q envs | wc -l)
[[ "$replicas" -eq 2 ]] || { log "expected 2 env replicas, found $replicas"; exit 1; }
log "PASS (full, $COMPOSE): both replicas served gold function-calling and code episodes"
