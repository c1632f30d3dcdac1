#!/usr/bin/env bash
# The GPU figures that docs/RESULTS.md still lacks, as the one prepared run a session lent a device machine makes
# (15 minutes of device time in all; /work/.library/device/README.md).
#   here, once:  bash scripts/gpu_check.sh --pack
#       the pure-Python wheels the device image lacks (open_clip, diffusers, gymnasium, ...), at the versions of this
#       .venv, into .whl/ (ignored by git, about 9 MB), and a rendered scene as .whl/scene.png (no PyBullet there)
#   there:       device run with carry [".whl"], timeout_s 560, command: bash scripts/gpu_check.sh
#       installs those wheels and this package (editable, no dependencies) into the image's Python (its own torch),
#       then writes to $OUT: gpu.txt, bench_policy.json (every preset: ms per action and per chunk at batch 1,
#       batch-32 actions/s, training samples/s; eager, CUDA graph and compiled graph), bench_tools.json (ms per
#       tool call, diffusion images/s in batches of 64) and their logs.
#   here:        bash scripts/gpu_check.sh --cpu     the same benches on this CPU (debug preset), a dry run
set -euo pipefail
cd "$(dirname "$0")/.."
WHEELS="open_clip_torch diffusers gymnasium ftfy wcwidth cloudpickle farama-notifications"

if [ "${1:-}" = "--pack" ]; then
    rm -rf .whl && mkdir -p .whl
    for name in $WHEELS; do
        version=$(.venv/bin/python -c "import importlib.metadata as m; print(m.version('$name'))")
        python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
            --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
            -d .whl "$name==$version"
    done
    .venv/bin/python -c "
from PIL import Image
from vla.agent.commands.tools import render_scene
Image.fromarray(render_scene('place:0', 96)).save('.whl/scene.png')"
    ls .whl && du -sh .whl
    exit 0
fi

out="${OUT:-runs/gpu_check}"
mkdir -p "$out"
if [ "${1:-}" = "--cpu" ]; then
    py=.venv/bin/python device=cpu presets="--preset debug" compile=""
else
    py=python3 device=cuda presets="" compile="--compile"
    [ -f .whl/scene.png ] || { echo "error: no .whl/scene.png: run 'bash scripts/gpu_check.sh --pack' here and carry .whl" >&2; exit 2; }
    $py -m pip install -q --no-index --no-deps --no-compile --no-cache-dir .whl/*.whl
    $py -m pip install -q --no-index --no-deps --no-build-isolation -e .
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv > "$out/gpu.txt" || true
fi
$py -c "import torch, sys; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), sys.version.split()[0])" \
    | tee -a "$out/gpu.txt"
export PYTHONUNBUFFERED=1
# shellcheck disable=SC2086  # presets/compile are word lists
timeout 330 $py -m vla.agent.cli bench policy --device $device $presets $compile --repeats 20 --json \
    2>&1 | tee "$out/bench_policy.log" || echo "bench policy: exit ${PIPESTATUS[0]}" | tee -a "$out/bench_policy.log"
tail -n 1 "$out/bench_policy.log" > "$out/bench_policy.json"
timeout 150 $py -m vla.agent.cli bench tools .whl/scene.png --device $device --batch 64 --repeats 10 --json \
    2>&1 | tee "$out/bench_tools.log" || echo "bench tools: exit ${PIPESTATUS[0]}" | tee -a "$out/bench_tools.log"
tail -n 1 "$out/bench_tools.log" > "$out/bench_tools.json"
