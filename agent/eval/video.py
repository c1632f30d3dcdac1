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
    return np.concatenate([band, big], 0)


def write_episode_video(path: Path, frames: list[np.ndarray], instruction: str, success: bool, fps: int = 10) -> Path:
    """One episode as MP4 through the env's video writer (the file appears only once complete)."""
    from vla.envs.video import VideoWriter

    label = "success" if success else "failure"
    path.parent.mkdir(parents=True, exist_ok=True)
    with VideoWriter(path, fps=fps) as writer:
        for t, frame in enumerate(frames):
            writer.write(annotate(frame, [instruction, f"step {t}  {label if t == len(frames) - 1 else ''}"]))
    return path
