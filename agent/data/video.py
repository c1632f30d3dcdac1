"""Camera streams as MP4 (PyAV): encode many episodes into one file, decode frames back fast.

Frame `n` of a file has presentation time n / fps exactly, so an episode's frames sit at
`from_timestamp + frame_index / fps` as LeRobot expects. Each episode starts on a key frame and the GOP is
short, so a random frame costs a seek and at most `GOP` decoded frames; decoded frames are kept in a bounded
per-process LRU, so sequential and windowed access decodes each frame once.
"""
from __future__ import annotations

import os
from collections import OrderedDict
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from vla import VLAError

CODEC = "libx264"
PIX_FMT = "yuv420p"
GOP = 2  # key frame interval, as LeRobot's encode_video_frames (g=2)
CRF = 23


def encode(path: Path, episodes: list[np.ndarray], fps: int, gop: int = GOP, crf: int = CRF) -> None:
    """Write the episodes' uint8 frames (T, H, W, 3) back to back into one H.264 MP4 at `path`."""
    height, width = episodes[0].shape[1:3]
    options = {"crf": str(crf), "g": str(gop), "preset": "veryfast", "bf": "0"}
    with av.open(str(path), "w", format="mp4") as out:
        stream = out.add_stream(CODEC, rate=fps, options=options)
        stream.width, stream.height, stream.pix_fmt = width, height, PIX_FMT
        stream.codec_context.time_base = Fraction(1, fps)
        n = 0
        for frames in episodes:
            for t, img in enumerate(frames):
                frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24")
                frame.pts = n
                frame.time_base = Fraction(1, fps)
                if t == 0:
                    frame.pict_type = av.video.frame.PictureType.I
                out.mux(stream.encode(frame))
                n += 1
        out.mux(stream.encode())


def probe(path: Path) -> dict:
    """Video facts for info.json's `features[key]["info"]`, as LeRobot's get_video_info reports them."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        has_audio = len(container.streams.audio) > 0
        return {
            "video.height": stream.height,
            "video.width": stream.width,
            "video.codec": stream.codec_context.codec.canonical_name,
            "video.pix_fmt": stream.pix_fmt,
            "video.is_depth_map": False,
            "video.fps": int(stream.base_rate),
            "video.channels": 3,
            "has_audio": has_audio,
        }


class FrameDecoder:
    """Decode frames of MP4 files by time, caching decoded frames (bounded by `cache_mb`) and open files."""

    def __init__(self, cache_mb: float = 512.0, max_open: int = 8):
        self.cache_bytes = int(cache_mb * 2**20)
        self.max_open = max_open
        self._frames: OrderedDict[tuple[str, int], np.ndarray] = OrderedDict()
        self._bytes = 0
        self._open: OrderedDict[str, av.container.InputContainer] = OrderedDict()
        self._pid = os.getpid()
        self._last: dict[str, int] = {}

    def frames(self, path: Path, numbers: list[int], fps: int, until: int | None = None) -> np.ndarray:
        """Frames with the given file-global numbers (time = number / fps) as uint8 (N, H, W, 3).

        On a cache miss during sequential access (this request starts right after the previous one in the same
        file), decoding reads ahead to frame `until` and caches those frames too, so a sequential pass costs one
        seek per read-ahead span; random access decodes only from the nearest key frame.
        """
        key = str(path)
        sequential = self._last.get(key) == numbers[0] - 1
        self._last[key] = numbers[-1]
        have: dict[int, np.ndarray] = {}
        for n in numbers:
            if (key, n) in self._frames:
                self._frames.move_to_end((key, n))
                have[n] = self._frames[(key, n)]
        missing = sorted(set(numbers) - set(have))
        if missing:
            have.update(self._decode(key, missing, fps, max(missing[-1], (until or 0) if sequential else 0)))
        return np.stack([have[n] for n in numbers])

    def _container(self, key: str) -> av.container.InputContainer:
        if os.getpid() != self._pid:  # forked into a DataLoader worker: never share the parent's handles
            self._open.clear()
            self._pid = os.getpid()
        if key in self._open:
            self._open.move_to_end(key)
            return self._open[key]
        if not os.path.isfile(key):
            raise VLAError(f"video file {key} is missing.")
        try:
            container = av.open(key)
        except (av.error.FFmpegError, OSError) as exc:
            raise VLAError(f"video file {key} cannot be opened ({exc}).") from None
        container.streams.video[0].thread_type = "AUTO"
        self._open[key] = container
        while len(self._open) > self.max_open:
            self._open.popitem(last=False)[1].close()
        return container

    def _decode(self, key: str, wanted: list[int], fps: int, last: int) -> dict[int, np.ndarray]:
        """Decode from the key frame before wanted[0] through `last`; returns the wanted frames by number."""
        container = self._container(key)
        stream = container.streams.video[0]
        todo, got = set(wanted), {}
        first = wanted[0]
        container.seek(int(first / fps / stream.time_base), stream=stream, backward=True, any_frame=False)
        for frame in container.decode(stream):
            n = int(round(float(frame.pts * stream.time_base) * fps))
            if n >= first - GOP:
                img = frame.to_ndarray(format="rgb24")
                self._put((key, n), img)
                if n in todo:
                    got[n] = img
                    todo.discard(n)
            if n >= last and not todo:
                break
        if todo:
            raise VLAError(
                f"video file {key} ends before frame {min(todo)} (t={min(todo) / fps:.3f}s) that the episode "
                "metadata points to; the file is truncated or does not belong to this dataset."
            )
        return got

    def _put(self, k: tuple[str, int], img: np.ndarray) -> None:
        if k in self._frames:
            return
        self._frames[k] = img
        self._bytes += img.nbytes
        while self._bytes > self.cache_bytes and self._frames:
            self._bytes -= self._frames.popitem(last=False)[1].nbytes
