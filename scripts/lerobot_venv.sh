#!/usr/bin/env bash
# Create .venv-lerobot: a separate virtual environment holding LeRobot's own dataset loader (the standalone
# `lerobot-dataset` package, import name `ledataset`) for the interoperability check. Its pins
# (huggingface_hub<0.36, av<16, datasets<4.2) clash with .venv's transformers 5, so it lives beside it.
# lerobot-dataset leaves torch to the user; rather than download a second torch, the venv sees .venv's
# torch/torchvision through a .pth entry placed *after* its own site-packages, so every package the venv
# installs itself (datasets, huggingface_hub, av, pandas, numpy...) shadows .venv's copy. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=.venv-lerobot
if "$venv/bin/python" -c "import ledataset.datasets.lerobot_dataset, torch, av" 2>/dev/null; then
    exit 0
fi
[ -x .venv/bin/python ] || { echo "error: .venv is missing; run scripts/venv.sh first." >&2; exit 2; }
rm -rf "$venv"
python3 -m venv "$venv"
"$venv/bin/python" -m pip install -q "lerobot-dataset==0.4.4"
main_site=$(.venv/bin/python -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
venv_site=$("$venv/bin/python" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
echo "$main_site" > "$venv_site/zz_vla_main_torch.pth"
"$venv/bin/python" -c "import ledataset.datasets.lerobot_dataset, torch, av, huggingface_hub as h; \
print('ledataset venv ok: torch', torch.__version__, 'av', av.__version__, 'huggingface_hub', h.__version__)"
