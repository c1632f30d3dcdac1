"""A light-visual copy of pybullet_data's Franka Panda URDF, generated once into a cache directory.

The stock visual meshes dominate TinyRenderer time. This keeps the true kinematics, inertias and
collision meshes, and replaces each link's visual with primitives fitted to its collision mesh:
a cylinder along the mesh's longest extent (white links, dark joints) and boxes for hand and fingers.
"""
from __future__ import annotations

import hashlib
import os
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pybullet_data

PANDA_DIR = Path(pybullet_data.getDataPath()) / "franka_panda"
STOCK_URDF = PANDA_DIR / "panda.urdf"
WHITE = "0.93 0.93 0.93 1"
DARK = "0.22 0.22 0.24 1"
BOX_LINKS = {"panda_hand", "panda_leftfinger", "panda_rightfinger"}
_VERSION = "4"


def cache_dir() -> Path:
    root = os.environ.get("VLA_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "vla")
    path = Path(root) / "urdf"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _mesh_path(filename: str) -> Path:
    return PANDA_DIR / filename.replace("package://", "")


def _mesh_box(path: Path, rpy_z: float) -> tuple[np.ndarray, np.ndarray]:
    """Axis-aligned (lo, hi) of an OBJ's vertices in the link frame (only z-rotations occur here)."""
    verts = np.array([[float(x) for x in line.split()[1:4]] for line in path.read_text().splitlines()
                      if line.startswith("v ")])
    c, s = np.cos(rpy_z), np.sin(rpy_z)
    verts = verts @ np.array([[c, s, 0.0], [-s, c, 0.0], [0.0, 0.0, 1.0]])
    return verts.min(axis=0), verts.max(axis=0)


def _visual(origin_xyz, rpy, geometry: ET.Element, rgba: str) -> ET.Element:
    vis = ET.Element("visual")
    ET.SubElement(vis, "origin", xyz=" ".join(f"{v:.5f}" for v in origin_xyz), rpy=" ".join(f"{v:.5f}" for v in rpy))
    geo = ET.SubElement(vis, "geometry")
    geo.append(geometry)
    mat = ET.SubElement(vis, "material", name=f"m{rgba.replace(' ', '_')}")
    ET.SubElement(mat, "color", rgba=rgba)
    return vis


def _primitives(name: str, lo: np.ndarray, hi: np.ndarray) -> list[ET.Element]:
    """Primitive visuals approximating the box (lo, hi): a box, or a cylinder plus a dark joint cap."""
    centre, size = (lo + hi) / 2, hi - lo
    if name in BOX_LINKS:
        rgba = DARK if "finger" in name else WHITE
        return [_visual(centre, (0, 0, 0), ET.Element("box", size=" ".join(f"{v:.5f}" for v in size)), rgba)]
    axis = int(np.argmax(size))
    rpy = [(0, 1.5708, 0), (1.5708, 0, 0), (0, 0, 0)][axis]
    radius = 0.5 * float(np.min(np.delete(size, axis)))
    body = ET.Element("cylinder", radius=f"{radius * 0.8:.5f}", length=f"{size[axis]:.5f}")
    cap = ET.Element("cylinder", radius=f"{radius:.5f}", length=f"{min(0.06, size[axis] * 0.4):.5f}")
    if name == "panda_link0":  # its joint cap would poke through the table top
        return [_visual(centre, rpy, body, WHITE)]
    return [_visual(centre, rpy, body, WHITE), _visual(np.zeros(3), rpy, cap, DARK)]


def _rewrite(root: ET.Element) -> None:
    for link in root.findall("link"):
        for vis in link.findall("visual"):
            link.remove(vis)
        col = link.find("collision")
        if col is None:
            continue
        mesh = col.find("geometry/mesh")
        origin = col.find("origin")
        rpy_z = float(origin.get("rpy", "0 0 0").split()[2]) if origin is not None else 0.0
        mesh.set("filename", str(_mesh_path(mesh.get("filename"))))
        lo, hi = _mesh_box(_mesh_path(mesh.get("filename")), rpy_z)
        for vis in _primitives(link.get("name"), lo, hi):
            link.insert(1, vis)


def light_panda_urdf() -> str:
    """Path of the light-visual Panda URDF, generated atomically on first use."""
    digest = hashlib.sha1((STOCK_URDF.read_text() + _VERSION).encode()).hexdigest()[:10]
    target = cache_dir() / f"panda_light_{digest}.urdf"
    if not target.exists():
        root = ET.parse(STOCK_URDF).getroot()
        _rewrite(root)
        fd, tmp = tempfile.mkstemp(dir=target.parent, suffix=".urdf.tmp")
        with os.fdopen(fd, "wb") as fh:
            ET.ElementTree(root).write(fh)
        os.replace(tmp, target)
    return str(target)
