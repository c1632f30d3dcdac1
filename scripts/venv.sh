#!/usr/bin/env bash
# Create .venv at the repository root if it is missing, then install the project with the given extras.
# Usage: bash scripts/venv.sh [EXTRAS]   e.g. bash scripts/venv.sh dev,ros
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-}"
if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
    .venv/bin/python -m pip install -q --upgrade pip
fi
spec="."
[ -n "$extras" ] && spec=".[${extras}]"
# torch/torchvision are pinned in pyproject.toml; pip takes them from this machine's local wheel store.
.venv/bin/python -m pip install -q -e "$spec"
