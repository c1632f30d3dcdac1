"""`vla train policy --config PRESET|FILE [key=value ...]`: train the VLA policy on a LeRobot dataset.

Resumes from the newest checkpoint in the run directory unless --fresh; `--export DIR` also writes the final
weights as a compact fp16 checkpoint (what ships under models/weights/policy/). Under `torchrun` it runs DDP.
"""
from __future__ import annotations

import json
from pathlib import Path

from vla import project_path


def add_arguments(parser) -> None:
    parser.add_argument("--config", default="cpu", help="preset name in configs/policy/ or a YAML file (default: cpu)")
    parser.add_argument("overrides", nargs="*", help="dotted overrides, e.g. train.steps=100 model.llm.layers=2")
    parser.add_argument("--out", help="run directory (default: train.out_dir or runs/policy/<name>)")
    parser.add_argument("--fresh", action="store_true", help="ignore existing checkpoints in the run directory")
    parser.add_argument("--stop-at", type=int, help="stop after this step (the schedule still runs to train.steps; "
                        "running again resumes)")
    parser.add_argument("--export", help="also write the final weights as an fp16 checkpoint to this directory")
    parser.add_argument("--json", action="store_true", help="print a JSON summary as the last line")


def run(args) -> int:
    import torch

    from vla import VLAError
    from vla.agent.train.data import load_training_sets
    from vla.agent.train.loop import train_policy
    from vla.models.policy.config import load_config
    from vla.models.policy.policy import load_policy

    cfg = load_config(args.config, args.overrides)
    run_dir = Path(args.out or cfg.train.out_dir or f"runs/policy/{cfg.name}")
    if cfg.train.threads > 0:
        torch.set_num_threads(cfg.train.threads)
    roots = [project_path(r.strip()) for r in cfg.data.root.split(",") if r.strip()]
    if not roots:
        raise VLAError("data.root is empty; give a dataset directory (or several, comma-separated).")
    root = roots[0]
    labelled = cfg.model.aux_waypoint > 0 or cfg.model.grounding   # both train on oracle labels
    data = load_training_sets(roots, cfg.model.action.horizon, cfg.data.max_episodes,
                              reserve=cfg.data.reset_scenes if labelled else 0)
    if labelled:
        import numpy as np

        from vla.agent.train.labels import oracle_labels

        parts = [oracle_labels(r, workers=cfg.data.label_workers, max_episodes=cfg.data.max_episodes)
                 for r in roots]
        data.attach_oracle_labels(np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]))
        if cfg.data.reset_scenes:
            from vla.agent.train.scenes import reset_scenes
            from vla.envs import TASKS

            data.attach_scenes(reset_scenes(root, cfg.data.reset_scenes, "seen", list(TASKS),
                                            int(data.images.shape[1]), workers=cfg.data.label_workers,
                                            arm=cfg.data.reset_arm))
    if args.stop_at is not None and args.stop_at < 1:
        raise VLAError(f"--stop-at must be a positive step (got {args.stop_at}).")
    final = train_policy(cfg, data, run_dir, resume=not args.fresh, stop_at=args.stop_at)
    state = json.loads((final / "train_state.json").read_text())
    summary = {"checkpoint": str(final), "step": state["step"], "frames": len(data),
               "samples_per_s": round(state.get("samples_per_s", 0.0), 2)}
    if args.export:
        load_policy(final).save(args.export, dtype=torch.float16)
        summary["export"] = args.export
    print(f"trained {cfg.name} to step {summary['step']} on {len(data)} frames "
          f"({summary['samples_per_s']} samples/s); checkpoint {final}")
    if args.json:
        print(json.dumps(summary))
    return 0
