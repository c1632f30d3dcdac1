"""Cameras rendered with TinyRenderer: a fixed front view (matrices computed once) and a wrist view.

The table is static and the front camera fixed, so its image (colour, depth, ids) is rendered once into a
background layer; each frame renders only the robot and objects and fills empty pixels from that layer.
The result matches rendering the table every frame, at a fraction of the cost (the table covers most pixels).
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

NEAR, FAR = 0.05, 3.0
FRONT_EYE = (1.3, 0.0, 0.9)
FRONT_TARGET = (0.3, 0.0, 0.08)


@dataclass
class Frame:
    rgb: np.ndarray  # (H, W, 3) uint8
    depth: np.ndarray | None  # (H, W) float32 metres
    seg: np.ndarray | None  # (H, W) int32 body uids (-1 for none)


EMPTY_Z = 0.9999999  # TinyRenderer clears its depth buffer to 0.99999994


class Camera:
    def __init__(self, bullet, width: int, height: int, fov: float = 45.0):
        self.p, self.width, self.height = bullet, width, height
        # pybullet's own float32 matrices for rendering (the numpy ones agree to 1 ulp: renders stay bit-identical)
        self.view = bullet.computeViewMatrix(FRONT_EYE, FRONT_TARGET, (0, 0, 1))
        self.proj = bullet.computeProjectionMatrixFOV(fov, width / height, NEAR, FAR)
        self.background = None  # (rgb (H, W, 3), zbuf (H, W), seg (H, W)) of the static scene, front view

    def cache_background(self, bullet_static) -> None:
        """Render the front view of a client holding only the static scene (the table) once."""
        self.background = self._raw(bullet_static, self.view, seg=True)

    def _raw(self, p, view, seg: bool):
        flags = 0 if seg else p.ER_NO_SEGMENTATION_MASK
        _, _, rgba, zbuf, mask = p.getCameraImage(self.width, self.height, view, self.proj,
                                                  renderer=p.ER_TINY_RENDERER, flags=flags, shadow=0)
        rgb = np.ascontiguousarray(np.asarray(rgba, dtype=np.uint8).reshape(self.height, self.width, 4)[:, :, :3])
        z = np.array(zbuf, dtype=np.float32).reshape(self.height, self.width)
        s = np.asarray(mask, dtype=np.int32).reshape(self.height, self.width) if seg else None
        return rgb, z, s

    def render(self, view=None, depth: bool = False, seg: bool = False) -> Frame:
        rgb, z, s = self._raw(self.p, view or self.view, seg)
        if view is None and self.background is not None:
            empty = z > EMPTY_Z  # (H, W) pixels no dynamic body covers
            bg_rgb, bg_z, _ = self.background
            rgb[empty] = bg_rgb[empty]
            if depth:
                z[empty] = bg_z[empty]
            if seg:
                s[empty] = -1  # the static scene is not an object
        d = (FAR * NEAR / (FAR - (FAR - NEAR) * z)).astype(np.float32) if depth else None
        return Frame(rgb, d, s)

    def wrist_view(self, hand_pos, hand_orn):
        """View matrix for a camera on the hand looking along the gripper's approach axis."""
        rot = np.array(self.p.getMatrixFromQuaternion(hand_orn)).reshape(3, 3)
        forward, up = rot[:, 2], rot[:, 0]
        eye = np.asarray(hand_pos) + 0.06 * up + 0.03 * forward  # beside the hand, looking past the fingers
        return self.p.computeViewMatrix(eye.tolist(), (eye + forward - 0.3 * up).tolist(), up.tolist())


def front_matrices(width: int, height: int, fov: float = 45.0) -> tuple[tuple, tuple]:
    """The fixed front camera's (view, projection) matrices, as pybullet takes them (column-major 16-tuples).

    Computed here as pybullet's computeViewMatrix / computeProjectionMatrixFOV do (OpenGL's lookAt and
    perspective; a test holds them equal to float32 rounding), so camera geometry needs no simulator."""
    eye, target = np.asarray(FRONT_EYE, np.float64), np.asarray(FRONT_TARGET, np.float64)
    f = (target - eye) / np.linalg.norm(target - eye)
    s = np.cross(f, (0.0, 0.0, 1.0))
    s /= np.linalg.norm(s)
    u = np.cross(s, f)
    view = np.eye(4)
    view[0, :3], view[1, :3], view[2, :3] = s, u, -f
    view[:3, 3] = -view[:3, :3] @ eye
    y = 1.0 / np.tan(np.radians(fov) / 2)
    proj = np.zeros((4, 4))
    proj[0, 0], proj[1, 1] = y / (width / height), y
    proj[2, 2], proj[2, 3], proj[3, 2] = (FAR + NEAR) / (NEAR - FAR), 2 * FAR * NEAR / (NEAR - FAR), -1.0
    return tuple(view.flatten(order="F")), tuple(proj.flatten(order="F"))


def project_front(points, width: int, height: int, fov: float = 45.0) -> np.ndarray:
    """World points (..., 3) -> pixel coordinates (..., 2) as (column, row) in the front camera's image."""
    view, proj = (np.array(m).reshape(4, 4, order="F") for m in front_matrices(width, height, fov))
    pts = np.asarray(points, dtype=np.float64)
    homo = np.concatenate([pts, np.ones(pts.shape[:-1] + (1,))], -1)
    clip = homo @ (proj @ view).T
    ndc = clip[..., :2] / clip[..., 3:4]
    return np.stack([(ndc[..., 0] + 1) * 0.5 * width, (1 - ndc[..., 1]) * 0.5 * height], -1)


def unproject_front(pixels, width: int, height: int, z: float, fov: float = 45.0) -> np.ndarray:
    """Pixel coordinates (..., 2) as (column, row) in the front image -> the world points (..., 3) on the plane at
    height `z` that they show (the inverse of `project_front` for points at that height)."""
    px = np.asarray(pixels, dtype=np.float64)
    ndc = np.stack([px[..., 0] / width * 2 - 1, 1 - px[..., 1] / height * 2], -1)
    inv = _front_inverse(width, height, fov)
    ends = []
    for depth in (-1.0, 1.0):                                   # the near and far clip planes
        homo = np.concatenate([ndc, np.full(ndc.shape[:-1] + (1,), depth), np.ones(ndc.shape[:-1] + (1,))], -1)
        world = homo @ inv.T
        ends.append(world[..., :3] / world[..., 3:4])
    near, far = ends
    t = (z - near[..., 2:3]) / (far[..., 2:3] - near[..., 2:3])
    return near + t * (far - near)


@functools.lru_cache(maxsize=8)
def _front_inverse(width: int, height: int, fov: float) -> np.ndarray:
    """The inverse of the front camera's projection @ view (fixed, so computed once per image size)."""
    view, proj = (np.array(m).reshape(4, 4, order="F") for m in front_matrices(width, height, fov))
    return np.linalg.inv(proj @ view)
