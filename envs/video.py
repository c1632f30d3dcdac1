"""MP4 writing (H.264, yuv420p) with PyAV; the file appears only once complete. No torch."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

from vla import VLAError


class VideoWriter:
    """`with VideoWriter("out.mp4", fps=10) as vw: vw.write(frame)` for uint8 (H, W, 3) RGB frames."""

    def __init__(self, path: str | os.PathLike, fps: int = 10, crf: int = 23):
        self.path = Path(path)
        if self.path.suffix.lower() != ".mp4":
            raise VLAError(f"video path {str(path)!r} must end in .mp4.")
        if not self.path.parent.exists():
            raise VLAError(f"folder {str(self.path.parent)!r} for the video does not exist.")
        self.fps, self.crf = fps, crf
        self._container = self._stream = None
        fd, self._tmp = tempfile.mkstemp(dir=self.path.parent, suffix=".mp4.part")
        os.close(fd)
        self.frames = 0

    def _open(self, height: int, width: int) -> None:
        import av

        self._container = av.open(self._tmp, mode="w", format="mp4")
        self._stream = self._container.add_stream("libx264", rate=self.fps)
        self._stream.width, self._stream.height = width + width % 2, height + height % 2
        self._stream.pix_fmt = "yuv420p"
        self._stream.options = {"crf": str(self.crf)}

    def write(self, frame: np.ndarray) -> None:
        import av

        frame = np.asarray(frame, dtype=np.uint8)  # (H, W, 3)
        if frame.ndim != 3 or frame.shape[2] != 3:
            raise VLAError(f"video frames must be (H, W, 3) RGB; got shape {frame.shape}.")
        if self._container is None:
            self._open(*frame.shape[:2])
        pad_h, pad_w = self._stream.height - frame.shape[0], self._stream.width - frame.shape[1]
        if pad_h or pad_w:
            frame = np.pad(frame, ((0, pad_h), (0, pad_w), (0, 0)), mode="edge")
        for packet in self._stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
            self._container.mux(packet)
        self.frames += 1

    def close(self) -> None:
        if self._container is None:
            os.unlink(self._tmp)
            return
        for packet in self._stream.encode():
            self._container.mux(packet)
        self._container.close()
        self._container = None
        os.replace(self._tmp, self.path)

    def abort(self) -> None:
        if self._container is not None:
            self._container.close()
            self._container = None
        if os.path.exists(self._tmp):
            os.unlink(self._tmp)

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.abort() if exc_type else self.close()
