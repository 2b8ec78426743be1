#!/usr/bin/env bash
# Fetch BFCL v4's data (the bfcl-eval wheel, without its dependencies) for the bfcl/* envs and tests.
#   $CACHE/pkg   the unpacked wheel: what resrl_envs.bfcl.data reads (override with RESRL_BFCL_DATA)
#   $CACHE/venv  a virtualenv with bfcl-eval installed --no-deps: BFCL's own checker, for tests/bfcl
# CACHE defaults to ${XDG_CACHE_HOME:-~/.cache}/resrl/bfcl. Safe to re-run: it does nothing when done.
set -euo pipefail
VERSION="${BFCL_EVAL_VERSION:-2026.3.23}"
CACHE="${RESRL_BFCL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/resrl/bfcl}"
PYTHON="${PYTHON:-python3}"
mkdir -p "$CACHE"
wheel="$CACHE/bfcl_eval-$VERSION-py3-none-any.whl"
if [ ! -f "$wheel" ]; then
  echo "fetch_bfcl: downloading bfcl-eval==$VERSION (no dependencies) into $CACHE"
  "$PYTHON" -m pip download -q --no-deps --only-binary=:all: -d "$CACHE" "bfcl-eval==$VERSION"
fi
if [ ! -f "$CACHE/pkg/.version-$VERSION" ]; then
  rm -rf "$CACHE/pkg"
  "$PYTHON" -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])' "$wheel" "$CACHE/pkg"
  touch "$CACHE/pkg/.version-$VERSION"
fi
# BFCL's checker needs only the standard library; its math domain also needs mpmath (pure Python, no deps).
if [ ! -f "$CACHE/venv/.ready-$VERSION" ]; then
  rm -rf "$CACHE/venv"
  "$PYTHON" -m venv "$CACHE/venv"
  "$CACHE/venv/bin/python" -m pip install -q --no-deps "$wheel" "mpmath==1.3.0"
  touch "$CACHE/venv/.ready-$VERSION"
fi
echo "fetch_bfcl: bfcl-eval $VERSION ready: data in $CACHE/pkg, checker venv in $CACHE/venv"
