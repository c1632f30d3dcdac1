"""Checkpoint directories: `config.json` (resolved), `model.safetensors`, `stats.json`, `tokenizer/`, and more.

Shared by every model family. A directory is written under a temporary name and renamed into place, so a
reader never sees half a checkpoint; nothing is pickled (tensors go to safetensors, everything else to JSON).
"""
from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import torch

from vla import VLAError


def _plain_tensors(tensors: dict[str, torch.Tensor], dtype: torch.dtype | None) -> dict[str, torch.Tensor]:
    """Contiguous, unshared CPU copies (safetensors refuses shared storage); floats cast to `dtype` if given."""
    out = {}
    for name, t in tensors.items():
        t = t.detach().to("cpu")
        if dtype is not None and t.is_floating_point():
            t = t.to(dtype)
        out[name] = t.contiguous().clone()
    return out


def write_checkpoint(path: str | Path, *, config: dict, state_dict: dict[str, torch.Tensor],
                     json_files: dict[str, dict] | None = None,
                     tensor_files: dict[str, dict[str, torch.Tensor]] | None = None,
                     tokenizer=None, dtype: torch.dtype | None = None) -> Path:
    """Write a checkpoint directory atomically. `json_files`/`tensor_files` map file names to contents."""
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    (tmp / "config.json").write_text(json.dumps(config, indent=2))
    save_file(_plain_tensors(state_dict, dtype), str(tmp / "model.safetensors"))
    for name, data in (json_files or {}).items():
        (tmp / name).write_text(json.dumps(data, indent=2))
    for name, tensors in (tensor_files or {}).items():
        save_file(_plain_tensors(tensors, None), str(tmp / name))
    if tokenizer is not None:
        tokenizer.save_pretrained(str(tmp / "tokenizer"))
    old = path.parent / f".{path.name}.old-{os.getpid()}"
    if path.exists():
        path.rename(old)
    tmp.rename(path)
    shutil.rmtree(old, ignore_errors=True)
    return path


@dataclass
class Checkpoint:
    path: Path
    config: dict
    state_dict: dict[str, torch.Tensor]
    json_files: dict[str, dict] = field(default_factory=dict)

    @property
    def tokenizer_dir(self) -> Path:
        return self.path / "tokenizer"

    def tensors(self, name: str) -> dict[str, torch.Tensor]:
        from safetensors.torch import load_file

        file = self.path / name
        if not file.is_file():
            raise VLAError(f"checkpoint {str(self.path)!r} has no {name}.")
        return load_file(str(file))


def read_checkpoint(path: str | Path, json_names: tuple[str, ...] = ("stats.json",)) -> Checkpoint:
    """Read a checkpoint directory written by `write_checkpoint`; a missing piece is a VLAError."""
    from safetensors.torch import load_file

    path = Path(path)
    for name in ("config.json", "model.safetensors", *json_names):
        if not (path / name).is_file():
            raise VLAError(f"{str(path)!r} is not a checkpoint directory (missing {name}).")
    try:
        config = json.loads((path / "config.json").read_text())
        extra = {name: json.loads((path / name).read_text()) for name in json_names}
    except json.JSONDecodeError as exc:
        raise VLAError(f"checkpoint {str(path)!r} has a corrupt JSON file ({exc.msg}).") from None
    return Checkpoint(path, config, load_file(str(path / "model.safetensors")), extra)
