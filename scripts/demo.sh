#!/usr/bin/env bash
# Quickstart 1: install into .venv (if not already there) and run the main job: the agent takes a
# natural-language command in simulation, plans it, acts, answers, and writes a video of it.
# The shipped VLA policy does not yet solve the tasks (see README "Status"), so the demo drives the arm with the
# scripted oracle; `--policy default` runs the trained VLA instead. Perception runs on the shipped tools.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/venv.sh
mkdir -p outputs
.venv/bin/vla run "put the red block in the green bowl, then tell me what is left on the table" \
    --policy oracle --video outputs/demo.mp4 --log outputs/demo.json
