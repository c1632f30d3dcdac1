"""Evaluation videos: camera frames upscaled, with the instruction (and the outcome) drawn on them."""
from __future__ import annotations

import textwrap
from pathlib import Path

import cv2
import numpy as np

SCALE = 3
FONT = cv2.FONT_HERSHEY_SIMPLEX


def annotate(frame: np.ndarray, lines: list[str]) -> np.ndarray:
    """uint8 (H, W, 3) -> uint8 (H*SCALE + band, W*SCALE, 3) with `lines` written in a band on top."""
    big = cv2.resize(frame, None, fx=SCALE, fy=SCALE, interpolation=cv2.INTER_NEAREST)
    width = big.shape[1]
    wrapped = [w for line in lines for w in textwrap.wrap(line, max(10, width // 9))] or [""]
    band = np.zeros((18 * len(wrapped) + 8, width, 3), np.uint8)
    for i, text in enumerate(wrapped):
        cv2.putText(band, text, (6, 18 * (i + 1)), FONT, 0.45, (255, 255, 255), 1, cv2.LINE_AA)
    out = np.concatenate([band, big], 0)
    return out[: out.shape[0] // 2 * 2, : out.shape[1] // 2 * 2]                 # even sizes for H.264


def write_episode_video(path: Path, frames: list[np.ndarray], instruction: str, success: bool, fps: int = 10) -> Path:
    from vla.agent.data.video import encode

    label = f"{'success' if success else 'failure'}"
    annotated = np.stack([annotate(f, [instruction, f"step {t}  {label if t == len(frames) - 1 else ''}"])
                          for t, f in enumerate(frames)])
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp.mp4")
    encode(tmp, [annotated], fps)
    tmp.replace(path)
    return path
