#!/usr/bin/env bash
# Reproduce the shipped perception tools (models/weights/{clip,vlm,diffusion}) on two CPU cores, about 6 h.
# The scene sets (data/tools/*.npz) are rendered on first use. Runs are minute-budgeted, as the shipped ones
# were, so a rerun lands close to the shipped weights but not bit-identical (use train.steps=N for that).
#   clip       4 stages, each continuing the last (init=) with a fresh schedule: 20 + 26 + 24 + 20 minutes
#   vlm        frozen vision tower from the CLIP + conv stem, on the 17k train_xl scenes: 6000 steps (25 min),
#              then 16 and 13 minutes more at lower rates, without object tokens; then the object tokens are
#              added (model.objects, 6000 steps, 29 min), trained on for 30 minutes more, and moved after the
#              question (model.objects_after_prompt) for 30 minutes; then 30 minutes with the grounding head
#              (model.object_roles), and 30 + 30 more with the relation to [SEP] (model.object_relation); last,
#              the full-resolution detection heatmap alone (fine_only, 2500 steps, 17 min); last, 35 minutes with the
#              agent's step-check questions added ("is the red block on the blue block?"); last, 30 minutes on
#              the rebalanced questions (existence "no" pairs of the scene's own colours and shapes, containment
#              only where something is in a bowl, holding balanced against an empty gripper).
#              (The shipped run's first object stage had no colour/size head and no raw colour yet; the next stage
#              added them. Its full-resolution heatmap came only in the last stage; the preset now has it from the
#              first object stage on, trained with the rest.)
#   diffusion  latent: its VAE on crops of the train_xl renders (20 min), then the UNet on their latents
#              (55 min), conditioned on the shipped CLIP's text tower (a frozen copy is saved with it), v-prediction;
#              then 60 minutes more from that checkpoint, saving an EMA of the weights (decay 0.999); then the
#              VAE's decoder alone (25 min); then 65 minutes more of the UNet (EMA) on captions of only what each
#              image shows; sampled with DPM-Solver++ (model.sampler=dpm in configs/diffusion/latent.yaml)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/venv.sh
vla=.venv/bin/vla
clip=models/weights/clip
$vla train clip --preset tiny --out "$clip" train.minutes=20
$vla train clip --preset tiny --out "$clip" init=$clip train.minutes=26 train.lr=0.0007 train.warmup_steps=20 \
    crop_fraction=0.6
$vla train clip --preset tiny --out "$clip" init=$clip train.minutes=24 train.threads=2 train.lr=0.0005 \
    train.warmup_steps=50 crop_fraction=0.6
$vla train clip --preset tiny --out "$clip" init=$clip train.minutes=20 train.lr=0.0003 train.warmup_steps=20 \
    crop_fraction=0.6
# The shipped VLM was trained on questions and captions about every annotated object, also those the image hides
# (visible_only=false); the default now asks only about what shows (tried as a 30-minute continuation of the shipped
# weights, runs/vlm/vis1: held-out VQA 95.7 %, caption recall 0.934; the same as the shipped 95.6 % / 0.936).
vlm="$vla train vlm --preset tiny --out models/weights/vlm visible_only=false check_questions=false"
plain="model.objects=0 model.object_roles=false model.object_relation=false"
$vlm train.threads=2 $plain
$vlm init=models/weights/vlm train.minutes=16 train.lr=0.0003 \
    train.warmup_steps=20 train.threads=2 $plain
$vlm init=models/weights/vlm train.minutes=13 train.lr=0.0002 \
    train.warmup_steps=20 train.threads=2 $plain
before="model.objects_after_prompt=false model.object_roles=false model.object_relation=false"
$vlm init=models/weights/vlm train.threads=2 $before
$vlm init=models/weights/vlm train.minutes=30 train.steps=6500 \
    train.lr=0.0004 train.threads=2 $before
$vlm init=models/weights/vlm train.minutes=30 train.steps=6500 \
    train.lr=0.0004 train.threads=2 model.object_roles=false model.object_relation=false
$vlm init=models/weights/vlm train.minutes=30 train.steps=6500 \
    train.lr=0.0004 train.threads=2 model.object_relation=false
$vlm init=models/weights/vlm train.minutes=30 train.steps=6500 \
    train.lr=0.0004 train.threads=2
$vlm init=models/weights/vlm train.minutes=30 train.steps=6500 \
    train.lr=0.0002 train.warmup_steps=20 train.threads=2
$vlm init=models/weights/vlm fine_only=true train.steps=2500 train.minutes=0 train.lr=0.001 \
    train.warmup_steps=50 train.threads=2
# the agent's step checks (qa_data.CHECK_TYPES; their new words join the tokenizer), on what the images show
$vla train vlm --preset tiny --out models/weights/vlm init=models/weights/vlm train.minutes=35 train.steps=6500 \
    train.lr=0.0002 train.warmup_steps=20 train.threads=2
# the rebalanced questions (models/tools/qa_data.py: _qa_existence, _qa_in, _qa_holding)
$vla train vlm --preset tiny --out models/weights/vlm init=models/weights/vlm train.minutes=30 train.steps=6500 \
    train.lr=0.0002 train.warmup_steps=20 train.threads=2
# (the UNet's first two stages were trained on captions of every annotated object, hidden ones too)
$vla train diffusion --preset latent --out models/weights/diffusion train.threads=2 visible_only=false
$vla train diffusion --preset latent --out models/weights/diffusion init=models/weights/diffusion train.minutes=60 \
    train.steps=20000 train.lr=0.0003 train.warmup_steps=50 train.threads=2 ema=0.999 visible_only=false
# the VAE's decoder alone, on the frozen encoder's latents (the UNet stays valid), 25 min
$vla train diffusion --preset latent --out models/weights/diffusion init=models/weights/diffusion vae_decoder=true \
    train.steps=0 vae_train.minutes=25 vae_train.steps=100000 vae_train.lr=0.0003 vae_train.warmup_steps=50 \
    train.threads=2
$vla train diffusion --preset latent --out models/weights/diffusion init=models/weights/diffusion train.minutes=65 \
    train.steps=20000 train.lr=0.0003 train.warmup_steps=50 train.threads=2 ema=0.999
$vla eval tools --json
