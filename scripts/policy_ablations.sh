#!/usr/bin/env bash
# The two ablations of the policy, measured the same way (about 85 min on two CPU cores; never run two torch jobs
# at once here: two processes' thread pools slow each other down more than tenfold).
#   qf    the `cpu` preset as is: Q-Former bridge, parallel decoding
#   mlp   model.bridge.kind=mlp: a projection of all patch tokens instead of the Q-Former
#   ar    model.action.decoding=autoregressive: action tokens fed back one at a time (KV cache at inference)
# Each trains from scratch on data/seen128 for STEPS steps (default 2000; the shipped v7 stage took 9000) at
# ground_teacher 0.5, is scored on held-out frames (`vla eval offline`, data/heldout128) and closed loop on
# reach, pick, place and push (EPISODES per task, default 30, seen split), then timed (`vla bench policy`).
# Figures land in runs/abl/<variant>.{offline,eval,bench}.json.
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/venv.sh
vla=.venv/bin/vla
steps=${STEPS:-2000}
episodes=${EPISODES:-30}
out=${OUT:-runs/abl}
mkdir -p "$out"
variants=(qf mlp ar)
declare -A extra=([qf]="" [mlp]="model.bridge.kind=mlp" [ar]="model.action.decoding=autoregressive")
for v in "${variants[@]}"; do
  # shellcheck disable=SC2086  # the overrides are separate words
  $vla train policy --config cpu --out "$out/$v" train.steps="$steps" model.ground_teacher=0.5 \
      train.save_every=1000 ${extra[$v]} --export "$out/$v-export" || exit 1
done
for v in "${variants[@]}"; do
  $vla eval offline --policy "$out/$v-export" --data data/heldout128 --json | tail -1 > "$out/$v.offline.json"
  $vla eval --policy "$out/$v-export" --task reach,pick,place,push --split seen --episodes "$episodes" \
      --workers 2 --out "$out/eval-$v" --json | tail -1 > "$out/$v.eval.json"
  $vla bench policy --policy "$out/$v-export" --json | tail -1 > "$out/$v.bench.json"
done
for v in "${variants[@]}"; do
  echo "$v offline: $(cat "$out/$v.offline.json")"
  echo "$v closed loop: $(cat "$out/$v.eval.json")"
  echo "$v bench: $(cat "$out/$v.bench.json")"
done
