#!/usr/bin/env bash
# Reproduce the shipped VLA policy (models/weights/policy) from nothing: collect the demos, train the `cpu`
# preset, then fine-tune it on more scenes, and export fp16. About 6 h 40 min on two CPU cores; every stage
# resumes if killed (run the script again). Batches are a function of the step, so the weights come out the same.
#   stage 1  data/seen128 (1600 episodes), 5000 steps, ground_teacher 0.5
#   stage 2  the same data, resumed to the preset's 9000 steps at ground_teacher 0.9, exported fp16 (v7)
#   stage 3  data/seen128x = seen128 + 2400 DART episodes (--noise 0.01, new layouts): 4000 steps fine-tuning
#            from the stage-2 export (train.init) with a fresh cosine schedule at lr 2e-4, then resumed to 8000
#            (the schedule stretched to 8000 steps: a warm restart at about half the peak rate), exported fp16 (v8)
#   stage 4  colour-match maps added to the grounding head (model.ground_color_maps=4, new layers at zero):
#            2500 steps of a 4000-step schedule at lr 2e-4 from the v8 export
#   stage 5  from stage 4's step 2500, 4000 steps with half the frames recoloured (data.color_aug=0.5) (v9)
#   stage 6  relation features of the colour maps for twins picked out by size or side
#            (model.ground_relations=true, new layers at zero): 2000 steps at lr 2e-4 from the v9 export (v10);
#            the export reads the goal pixel near the best cell only (model.ground_peak=3, inference only)
#   stage 7  a U-Net over the pixel grounding branch (model.ground_pixel_depth=3, output layer at zero) and
#            14,000 start-of-episode scenes (data.reset_scenes, half with the arm at a random pose) in a third
#            of every batch: 2000 steps at lr 2e-4 from the v10 export (v11)
#   stage 8  the same settings for 2000 steps more from the v11 export, on the oracle labels whose goal moves
#            to the destination at the grasp (label version 2, docs/POLICY.md item 14), exported fp16
#            (v12). The shipped stages 1-7 were trained on version-1 labels; rerunning this script trains
#            every stage on version 2.
#   stage 9  the goal pointer (docs/POLICY.md item 16): the VLM's object detector fine-tuned on recoloured
#            scenes, then a relational transformer over the instruction, the detected objects and the state,
#            trained on oracle frames (data/goal/train.npz, rendered on first use) and attached to v12, fp16
#            (v14, shipped: the detections placed within their cell, item 17; v13 was the same on whole
#            cells). About 25 min. Needs the shipped VLM (models/weights/vlm) and its scenes
#            (data/tools/train_xl.npz, rendered on first use).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/venv.sh
vla=.venv/bin/vla
run=${RUN:-runs/policy/cpu}
$vla collect --task all --split seen --episodes 1600 --out data/seen128 --workers 2 --image-size 128
$vla collect --task all --split seen --episodes 2400 --seed 5 --noise 0.01 --out data/seen128b --workers 2 \
    --image-size 128
[ -f data/seen128x/meta/info.json ] || $vla dataset merge data/seen128 data/seen128b --out data/seen128x
$vla train policy --config cpu --out "$run" train.steps=5000 model.ground_teacher=0.5
$vla train policy --config cpu --out "$run" --export "$run-v7"
ft="train.init=$run-v7 data.root=data/seen128x train.lr=2.0e-4"
$vla train policy --config cpu --out "$run-ft" $ft train.steps=4000
$vla train policy --config cpu --out "$run-ft" $ft train.steps=8000 --export "$run-v8"
maps="data.root=data/seen128x train.lr=2.0e-4 model.ground_color_maps=4"
$vla train policy --config cpu --out "$run-maps" train.init="$run-v8" $maps train.steps=4000 --stop-at 2500
$vla train policy --config cpu --out "$run-recolor" train.init="$run-maps/checkpoints/step_0002500" $maps \
    data.color_aug=0.5 train.steps=4000 --export "$run-v9"
$vla train policy --config cpu --out "$run-relations" train.init="$run-v9" $maps data.color_aug=0.5 \
    model.ground_relations=true model.ground_peak=3 train.steps=2000 --export "$run-v10"
unet="$maps data.color_aug=0.5 model.ground_relations=true model.ground_peak=3 model.ground_pixel_depth=3 \
    data.reset_scenes=14000 data.reset_arm=0.5 data.reset_share=0.33"
$vla train policy --config cpu --out "$run-unet" train.init="$run-v10" $unet train.steps=2000 --export "$run-v11"
# model.action.replan=adaptive and model.action.commands=steps are inference only (docs/POLICY.md items 19-20):
# v12's export, and so the shipped policy the goal pointer is attached to, plans again after each move and
# follows a chained command one command at a time
$vla train policy --config cpu --out "$run-grasp" train.init="$run-v11" $unet train.steps=2000 \
    model.action.replan=adaptive model.action.commands=steps --export "$run-v12"
$vla train goal --out runs/goal/default train.threads=2 --attach "$run-v12" --export models/weights/policy
