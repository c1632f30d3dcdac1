"""Resumable training checkpoints: a policy checkpoint plus `optimizer.safetensors` and `train_state.json`.

Each is written atomically under `<run>/checkpoints/step_NNNNNNN/`; the newest complete one is resumed.
Optimizer tensors go to safetensors and its hyper-parameters to JSON, so nothing is pickled.
"""
from __future__ import annotations

import re
import shutil
from pathlib import Path

import torch

STEP_DIR = re.compile(r"^step_(\d{7})$")


def optimizer_tensors(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    """Split an optimizer state_dict into named tensors and JSON-able hyper-parameters."""
    sd = opt.state_dict()
    tensors, scalars = {}, {}
    for pid, entry in sd["state"].items():
        for key, value in entry.items():
            if torch.is_tensor(value):
                tensors[f"{pid}.{key}"] = value
            else:
                scalars[f"{pid}.{key}"] = value
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def restore_optimizer(opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], meta: dict) -> None:
    state: dict[int, dict] = {}
    for name, value in list(tensors.items()) + list(meta["scalars"].items()):
        pid, key = name.split(".", 1)
        state.setdefault(int(pid), {})[key] = value
    opt.load_state_dict({"state": state, "param_groups": meta["param_groups"]})


def save_train_checkpoint(run_dir: Path, policy, opt, step: int, keep_last: int, extra: dict) -> Path:
    tensors, meta = optimizer_tensors(opt)
    path = run_dir / "checkpoints" / f"step_{step:07d}"
    policy.save(path, json_files={"train_state.json": {"step": step, "optimizer": meta, **extra}},
                tensor_files={"optimizer.safetensors": tensors})
    for old in list_checkpoints(run_dir)[:-keep_last] if keep_last > 0 else []:
        shutil.rmtree(old, ignore_errors=True)
    return path


def list_checkpoints(run_dir: Path) -> list[Path]:
    """Complete step checkpoints, oldest first (temporary directories never match)."""
    root = run_dir / "checkpoints"
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if STEP_DIR.match(p.name) and (p / "train_state.json").is_file()]
    return sorted(found, key=lambda p: p.name)


def latest_checkpoint(run_dir: Path) -> Path | None:
    found = list_checkpoints(run_dir)
    return found[-1] if found else None
