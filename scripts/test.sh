#!/usr/bin/env bash
# Quickstart 2: install the dev (and ROS 2) dependencies into .venv and run the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/venv.sh dev,ros
exec .venv/bin/python -m pytest -q "$@"
