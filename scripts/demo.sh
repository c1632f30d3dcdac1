#!/usr/bin/env bash
# Quickstart 1: install into .venv (if not already there) and run the main job: the agent takes a
# natural-language command in simulation, plans it, acts, answers, and writes a video of it.
# The arm is driven by the shipped VLA policy (`--policy default`, models/weights/policy) and perception runs on
# the shipped tools, all offline; `--policy oracle` drives it with the scripted expert instead.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/venv.sh
mkdir -p outputs
.venv/bin/vla run "put the red block in the green bowl, then tell me what is left on the table" \
    --policy default --video outputs/demo.mp4 --log outputs/demo.json
