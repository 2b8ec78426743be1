#!/usr/bin/env bash
# Rewrites tasks/fc/*.jsonl: 5 train and 5 test tasks (seed 0) of every fc/ environment.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p tasks/fc
rm -f tasks/fc/*.jsonl
for env in $(resrl envs list --json 'fc/*' | python3 -c 'import json,sys; print(*[e["id"] for e in json.load(sys.stdin)])'); do
  for split in train test; do
    resrl tasks generate --env "$env" --split "$split" --n 5 --seed 0 --out "tasks/fc/${env//\//__}.$split.jsonl"
  done
done
