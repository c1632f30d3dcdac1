"""Video of an agent session: camera frames with the command, the current step and tool outputs drawn on.

Raw frames (small) are kept with their labels and drawn only when the video is written, so a long session
costs little memory. A localisation box is drawn where it was found; a generated image sits beside the
camera frame.
"""
from __future__ import annotations

import os
import textwrap
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

SCALE = 4  # 128 px camera frames become 512 px, large enough for legible text
BAND = 22  # pixels per text line
FONT = cv2.FONT_HERSHEY_SIMPLEX


@dataclass
class Shot:
    frame: np.ndarray  # uint8 (H, W, 3)
    top: list[str]
    bottom: list[str]
    box: tuple[int, int, int, int] | None = None
    side: np.ndarray | None = None  # e.g. a generated image shown beside the frame


def _lines(texts: list[str], width_px: int) -> list[str]:
    chars = max(20, width_px // 10)
    out: list[str] = []
    for text in texts:
        out.extend(textwrap.wrap(text, chars) or [""])
    return out


def draw(shot: Shot) -> np.ndarray:
    """One video frame: the upscaled camera image with text bands above and below."""
    h, w = shot.frame.shape[:2]
    img = cv2.resize(shot.frame, (w * SCALE, h * SCALE), interpolation=cv2.INTER_NEAREST)
    if shot.box is not None:
        x0, y0, x1, y1 = (int(v * SCALE) for v in shot.box)
        cv2.rectangle(img, (x0, y0), (x1, y1), (255, 255, 0), 2)
    if shot.side is not None:
        side = cv2.resize(shot.side, (img.shape[1], img.shape[0]), interpolation=cv2.INTER_LINEAR)
        img = np.concatenate([img, side], axis=1)
    width = img.shape[1]
    top, bottom = _lines(shot.top, width), _lines(shot.bottom, width)
    canvas = np.zeros((img.shape[0] + BAND * (len(top) + len(bottom)) + 8, width, 3), np.uint8)
    y = BAND - 6
    for line in top:
        cv2.putText(canvas, line, (6, y), FONT, 0.5, (255, 255, 255), 1, cv2.LINE_AA)
        y += BAND
    canvas[y - BAND + 10: y - BAND + 10 + img.shape[0]] = img
    y += img.shape[0] - BAND + 10 + BAND - 4
    for line in bottom:
        cv2.putText(canvas, line, (6, y), FONT, 0.5, (180, 255, 180), 1, cv2.LINE_AA)
        y += BAND
    return canvas


class VideoRecorder:
    """Collects shots during a session; `save(path)` writes one MP4 (all frames padded to one size)."""

    def __init__(self, hold: int = 15):
        self.shots: list[Shot] = []
        self.command = ""
        self.hold_frames = hold

    def on_frame(self, frame: np.ndarray, label: str) -> None:
        self.shots.append(Shot(frame.copy(), [f"> {self.command}"], [f"step: {label}"]))

    def hold(self, frame: np.ndarray, lines: list[str], box=None, side: np.ndarray | None = None) -> None:
        """Show a tool's output (or a reply) on a still frame for a moment."""
        shot = Shot(frame.copy(), [f"> {self.command}"], lines, box, side)
        self.shots.extend([shot] * self.hold_frames)

    def save(self, path: str | Path, fps: int = 10) -> Path:
        from vla.agent.data.video import encode

        if not self.shots:
            raise ValueError("no frames recorded")
        sizes = [draw(s).shape[:2] for s in self.shots]  # drawn twice so only one frame is in memory at a time
        height, width = max(h for h, _ in sizes), max(w for _, w in sizes)
        frames = _Padded(self.shots, height + height % 2, width + width % 2)  # yuv420p needs even sizes
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.stem}.partial{path.suffix}")
        encode(tmp, [frames], fps)
        os.replace(tmp, path)
        return path


class _Padded:
    """The drawn shots as a lazy (T, H, W, 3) sequence, each padded to one size, for the MP4 encoder."""

    def __init__(self, shots: list[Shot], height: int, width: int):
        self.shots, self.shape = shots, (len(shots), height, width, 3)

    def __iter__(self):
        for shot in self.shots:
            f = draw(shot)
            out = np.zeros(self.shape[1:], np.uint8)
            out[: f.shape[0], : f.shape[1]] = f
            yield out
