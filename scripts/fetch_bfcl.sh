#!/usr/bin/env bash
# Fetch BFCL v4's data (the bfcl-eval wheel, without its dependencies) for the bfcl/* envs and tests.
#   $CACHE/pkg   the unpacked wheel: what resrl_envs.bfcl.data reads (override with RESRL_BFCL_DATA)
#   $CACHE/venv  a virtualenv with bfcl-eval installed --no-deps (plus mpmath, which its math domain imports):
#                BFCL's own checker and executor, for the differential tests in tests/bfcl
# CACHE defaults to ${XDG_CACHE_HOME:-~/.cache}/resrl/bfcl. Safe to re-run: it does nothing when done.
set -euo pipefail
VERSION="${BFCL_EVAL_VERSION:-2026.3.23}"
CACHE="${RESRL_BFCL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/resrl/bfcl}"
PYTHON="${PYTHON:-python3}"
VENV_PY="$CACHE/venv/bin/python"
mkdir -p "$CACHE"
# The venv comes first: its pip (from ensurepip) downloads the wheel, so the system Python needs no pip.
if [ ! -f "$CACHE/venv/.ready-$VERSION" ]; then
  rm -rf "$CACHE/venv"
  "$PYTHON" -m venv "$CACHE/venv"
fi
wheel="$CACHE/bfcl_eval-$VERSION-py3-none-any.whl"
if [ ! -f "$wheel" ]; then
  echo "fetch_bfcl: downloading bfcl-eval==$VERSION (no dependencies) into $CACHE"
  "$VENV_PY" -m pip download -q --no-deps --only-binary=:all: -d "$CACHE" "bfcl-eval==$VERSION"
fi
if [ ! -f "$CACHE/pkg/.version-$VERSION" ]; then
  rm -rf "$CACHE/pkg"
  "$VENV_PY" -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])' "$wheel" "$CACHE/pkg"
  touch "$CACHE/pkg/.version-$VERSION"
fi
if [ ! -f "$CACHE/venv/.ready-$VERSION" ]; then
  "$VENV_PY" -m pip install -q --no-deps "$wheel" "mpmath==1.3.0"
  touch "$CACHE/venv/.ready-$VERSION"
fi
echo "fetch_bfcl: bfcl-eval $VERSION ready: data in $CACHE/pkg, checker venv in $CACHE/venv"
