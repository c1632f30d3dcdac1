#!/usr/bin/env bash
# CI: prove that LeRobot's own loader (lerobot-dataset, in its own venv) reads a freshly collected dataset
# offline: frame count, keys, shapes, one action value and one decoded image must match what the oracle wrote.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/lerobot_venv.sh
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
.venv/bin/vla collect --task pick,push --episodes 5 --out "$tmp/ds" --image-size 64 --episodes-per-file 3 --json > "$tmp/collect.json"
.venv/bin/python scripts/lerobot_interop.py expect "$tmp/ds" "$tmp/expect.npz" > /dev/null
HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 HF_HOME="$tmp/hf" \
    .venv-lerobot/bin/python scripts/lerobot_interop.py check "$tmp/ds" "$tmp/expect.npz"
HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 HF_HOME="$tmp/hf" \
    .venv-lerobot/bin/python scripts/lerobot_interop.py write "$tmp/lerobot-made" > /dev/null 2>&1
.venv/bin/python scripts/lerobot_interop.py read "$tmp/lerobot-made"
