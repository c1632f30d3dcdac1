"""sensor_msgs/Image <-> numpy, honouring `encoding`, `step` and `is_bigendian`, with no cv_bridge.

Incoming frames become uint8 RGB arrays (H, W, 3), the layout the env and the policy use. Anything
malformed (unknown encoding, too short a `step`, too little data, absurd size) raises `ImageError`,
one sentence naming what was wrong, so a node can drop the frame and carry on.
"""
from __future__ import annotations

import numpy as np

from vla import VLAError, did_you_mean

# encoding -> (channels, bytes per channel, channel order as "rgb" indices or None for mono)
ENCODINGS: dict[str, tuple[int, int, tuple[int, ...] | None]] = {
    "rgb8": (3, 1, (0, 1, 2)),
    "bgr8": (3, 1, (2, 1, 0)),
    "rgba8": (4, 1, (0, 1, 2)),
    "bgra8": (4, 1, (2, 1, 0)),
    "mono8": (1, 1, None),
    "8UC1": (1, 1, None),
    "8UC3": (3, 1, (2, 1, 0)),  # OpenCV convention: BGR
    "rgb16": (3, 2, (0, 1, 2)),
    "bgr16": (3, 2, (2, 1, 0)),
    "rgba16": (4, 2, (0, 1, 2)),
    "bgra16": (4, 2, (2, 1, 0)),
    "mono16": (1, 2, None),
    "16UC1": (1, 2, None),
}
MAX_SIDE = 8192


class ImageError(VLAError):
    """A camera frame that cannot be decoded."""


def decode(encoding: str, height: int, width: int, step: int, data, is_bigendian: bool = False) -> np.ndarray:
    """Raw image fields -> uint8 RGB (H, W, 3); 16-bit channels keep their high byte, mono is replicated."""
    if encoding not in ENCODINGS:
        raise ImageError(f"unsupported image encoding {encoding!r}; " + did_you_mean(encoding, ENCODINGS))
    channels, depth, order = ENCODINGS[encoding]
    if not (0 < height <= MAX_SIDE and 0 < width <= MAX_SIDE):
        raise ImageError(f"image size {width}x{height} is out of range; width and height must be 1..{MAX_SIDE}.")
    row = width * channels * depth
    if step < row:
        raise ImageError(f"image step {step} is shorter than one row of {width} {encoding} pixels ({row} bytes).")
    try:
        buf = np.frombuffer(memoryview(data).cast("B"), dtype=np.uint8)
    except TypeError as exc:
        raise ImageError(f"image data must be a byte buffer, got {type(data).__name__}.") from exc
    if buf.size < step * (height - 1) + row:
        raise ImageError(f"image data has {buf.size} bytes; {width}x{height} {encoding} with step {step} "
                         f"needs {step * (height - 1) + row}.")
    # Rows may be padded to `step`; view (H, step) and cut each row to its pixels.
    rows = np.lib.stride_tricks.as_strided(buf, shape=(height, row), strides=(step, 1))  # (H, row)
    if depth == 2:
        dtype = np.dtype(">u2" if is_bigendian else "<u2")
        pixels = (rows.copy().view(dtype).reshape(height, width, channels) >> 8).astype(np.uint8)
    else:
        pixels = rows.reshape(height, width, channels)
    if order is None:
        return np.repeat(pixels, 3, axis=2)  # (H, W, 1) -> (H, W, 3)
    return np.ascontiguousarray(pixels[..., list(order)])  # (H, W, 3) RGB


def decode_msg(msg) -> np.ndarray:
    """A sensor_msgs/Image (or anything with its fields) -> uint8 RGB (H, W, 3)."""
    return decode(msg.encoding, int(msg.height), int(msg.width), int(msg.step), msg.data, bool(msg.is_bigendian))


def encode(rgb: np.ndarray, encoding: str = "rgb8") -> dict:
    """uint8 RGB (H, W, 3) -> the Image fields (`height`, `width`, `encoding`, `step`, `data`, `is_bigendian`)."""
    rgb = np.asarray(rgb)
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ImageError(f"expected a uint8 (H, W, 3) RGB array, got {rgb.dtype} {rgb.shape}.")
    if encoding not in ("rgb8", "bgr8", "mono8"):
        raise ImageError(f"cannot encode to {encoding!r}; allowed: rgb8, bgr8, mono8.")
    if encoding == "bgr8":
        out = rgb[..., ::-1]
    elif encoding == "mono8":
        out = (rgb.astype(np.uint16).sum(axis=2) // 3).astype(np.uint8)  # (H, W)
    else:
        out = rgb
    out = np.ascontiguousarray(out)
    height, width = rgb.shape[:2]
    return {"height": height, "width": width, "encoding": encoding, "is_bigendian": 0,
            "step": out.nbytes // height, "data": out.tobytes()}


def to_msg(rgb: np.ndarray, stamp=None, frame_id: str = "camera", encoding: str = "rgb8"):
    """uint8 RGB (H, W, 3) -> sensor_msgs/Image (imports the message type, so needs ROS 2)."""
    from sensor_msgs.msg import Image

    msg = Image(**encode(rgb, encoding))
    msg.header.frame_id = frame_id
    if stamp is not None:
        msg.header.stamp = stamp
    return msg


def resize(rgb: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """uint8 (H, W, 3) -> (size[1], size[0], 3), area-averaged when shrinking."""
    width, height = size
    if rgb.shape[1] == width and rgb.shape[0] == height:
        return rgb
    import cv2

    shrink = width < rgb.shape[1] and height < rgb.shape[0]
    return cv2.resize(rgb, (width, height), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
