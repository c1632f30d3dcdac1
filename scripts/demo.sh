#!/usr/bin/env bash
# Quickstart 1: install into .venv (if not already there) and run the main job.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/venv.sh
mkdir -p outputs
.venv/bin/vla sim --instruction "put the red block in the green bowl" --policy oracle --video outputs/demo.mp4
