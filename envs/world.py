"""The simulated tabletop: one BulletClient, the table, the Panda and the task objects, plus ground-truth queries.

Objects are primitive shapes (boxes, cylinders, and bowls built from a disc and wall boxes); bowls are static.
Resting objects may sleep so that an idle scene costs little physics time.
"""
from __future__ import annotations

import contextlib
import os
import sys
from dataclasses import dataclass

import numpy as np


@contextlib.contextmanager
def _quiet_stdout(fds=(1,)):
    """Silence the C library's banners ("pybullet build time", "argv[0]=") so `--json` output stays clean."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(fd) for fd in fds]
    try:
        with open(os.devnull, "wb") as null:
            for fd in fds:
                os.dup2(null.fileno(), fd)
            yield
    finally:
        for fd, copy in zip(fds, saved):
            os.dup2(copy, fd)
            os.close(copy)


with _quiet_stdout((1, 2)):
    import pybullet
    from pybullet_utils import bullet_client

from vla import VLAError
from vla.envs import vocab
from vla.envs.robot import Panda

PHYSICS_HZ = 240
CONTROL_HZ = 10
SUBSTEPS = PHYSICS_HZ // CONTROL_HZ
TABLE_HALF = (0.65, 0.6, 0.02)
TABLE_CENTER = (0.35, 0.0, -0.02)


@dataclass
class ObjectSpec:
    """One object to place: what it is and where (x, y on the table top, yaw about the vertical)."""

    color: str
    shape: str
    size: str | None = None
    x: float = 0.5
    y: float = 0.0
    yaw: float = 0.0

    def footprint(self) -> float:
        """Radius of the circle the object covers on the table."""
        return vocab.footprint(self.shape, self.size)

    def height(self) -> float:
        return vocab.height(self.shape, self.size)


class CachedClient(bullet_client.BulletClient):
    """A BulletClient that binds each pybullet function to its client once, not on every call."""

    def __getattr__(self, name):
        attr = super().__getattr__(name)
        self.__dict__[name] = attr
        return attr


def add_table(p, visible: bool = True) -> int:
    """The table: a box whose top is the plane z = 0 (the robot's base stands on it)."""
    col = p.createCollisionShape(p.GEOM_BOX, halfExtents=TABLE_HALF)
    rgba = vocab.TABLE_COLOR if visible else (*vocab.TABLE_COLOR[:3], 0.0)
    vis = p.createVisualShape(p.GEOM_BOX, halfExtents=TABLE_HALF, rgbaColor=rgba)
    return p.createMultiBody(0, col, vis, TABLE_CENTER)


def static_scene_client():
    """A throwaway DIRECT client holding only the table, for rendering the static background once."""
    with _quiet_stdout():
        client = bullet_client.BulletClient(pybullet.DIRECT)
    add_table(client)
    return client


def set_table_visible(world: World, visible: bool) -> None:
    rgba = vocab.TABLE_COLOR if visible else (*vocab.TABLE_COLOR[:3], 0.0)
    world.p.changeVisualShape(world.table, -1, rgbaColor=rgba)


class World:
    """Owns the physics client; rebuilt from a list of ObjectSpec on every reset so episodes replay exactly."""

    def __init__(self, gui: bool = False, light_robot: bool = True):
        if gui and sys.platform.startswith("linux") and not os.environ.get("DISPLAY"):
            raise VLAError("the PyBullet GUI needs a display but DISPLAY is not set; run without --gui "
                           "(or render_mode='human').")
        with _quiet_stdout():
            self.p = CachedClient(pybullet.GUI if gui else pybullet.DIRECT)
        self.light_robot = light_robot
        self.table_in_background = False  # True: the table is drawn from the camera's cached background layer
        self.robot: Panda | None = None
        self.specs: list[ObjectSpec] = []
        self.uids: list[int] = []  # body uid per object, index = object id - 1

    def build(self, specs: list[ObjectSpec]) -> None:
        p = self.p
        p.resetSimulation()
        p.setGravity(0, 0, -9.81)
        p.setPhysicsEngineParameter(fixedTimeStep=1.0 / PHYSICS_HZ, numSolverIterations=10, numSubSteps=0,
                                    deterministicOverlappingPairs=1)
        self.table = add_table(p, visible=not self.table_in_background)
        p.changeDynamics(self.table, -1, lateralFriction=0.6)
        self.robot = Panda(p, light=self.light_robot)
        self.robot.reset()
        self.specs = list(specs)
        self.uids = [self._create(spec) for spec in self.specs]

    def _create(self, spec: ObjectSpec) -> int:
        p, rgba = self.p, vocab.COLORS[spec.color]
        orn = p.getQuaternionFromEuler([0, 0, spec.yaw])
        if spec.shape == "bowl":
            return self._create_bowl(spec, rgba, orn)
        if spec.shape == "cylinder":
            r, h = vocab.CYLINDER_RADIUS, vocab.CYLINDER_HEIGHT
            col = p.createCollisionShape(p.GEOM_CYLINDER, radius=r, height=h)
            vis = p.createVisualShape(p.GEOM_CYLINDER, radius=r, length=h, rgbaColor=rgba)
            mass = 0.06
        else:
            half = [vocab.BLOCK_EDGE[spec.size] / 2] * 3
            col = p.createCollisionShape(p.GEOM_BOX, halfExtents=half)
            vis = p.createVisualShape(p.GEOM_BOX, halfExtents=half, rgbaColor=rgba)
            mass = 0.06 if spec.size == "small" else 0.1
        uid = p.createMultiBody(mass, col, vis, [spec.x, spec.y, spec.height() / 2 + 1e-4], orn)
        p.changeDynamics(uid, -1, lateralFriction=1.0, spinningFriction=0.002, rollingFriction=0.0001,
                         activationState=p.ACTIVATION_STATE_ENABLE_SLEEPING)
        p.changeDynamics(uid, -1, activationState=p.ACTIVATION_STATE_SLEEP)  # spawned at rest; contact wakes it
        return uid

    def _create_bowl(self, spec: ObjectSpec, rgba, orn) -> int:
        p = self.p
        r, h, w = vocab.BOWL_RADIUS, vocab.BOWL_HEIGHT, vocab.BOWL_WALL
        n = 10
        wall_len = 2 * r * np.tan(np.pi / n) + w
        positions, orients, halves = [], [], []
        halves.append([0.72 * r, 0.72 * r, w / 2])
        positions.append([0, 0, w / 2])
        orients.append([0, 0, 0, 1])
        for k in range(n):
            a = 2 * np.pi * k / n
            halves.append([w / 2, wall_len / 2, h / 2])
            positions.append([(r - w / 2) * np.cos(a), (r - w / 2) * np.sin(a), h / 2])
            orients.append(list(p.getQuaternionFromEuler([0, 0, a])))
        types = [p.GEOM_BOX] * len(halves)
        col = p.createCollisionShapeArray(types, halfExtents=halves, collisionFramePositions=positions,
                                          collisionFrameOrientations=orients)
        vis = p.createVisualShapeArray(types, halfExtents=halves, visualFramePositions=positions,
                                       visualFrameOrientations=orients, rgbaColors=[rgba] * len(halves))
        uid = p.createMultiBody(0, col, vis, [spec.x, spec.y, 0.0], orn)
        p.changeDynamics(uid, -1, lateralFriction=0.8)
        return uid

    def step(self) -> None:
        for _ in range(SUBSTEPS):
            self.p.stepSimulation()

    # ground-truth queries; object ids are 1-based indices into self.specs
    def position(self, oid: int) -> np.ndarray:
        return np.array(self.p.getBasePositionAndOrientation(self.uids[oid - 1])[0])

    def yaw(self, oid: int) -> float:
        orn = self.p.getBasePositionAndOrientation(self.uids[oid - 1])[1]
        return float(self.p.getEulerFromQuaternion(orn)[2])

    def spec(self, oid: int) -> ObjectSpec:
        return self.specs[oid - 1]

    def ids(self, shape: str | None = None) -> list[int]:
        return [i + 1 for i, s in enumerate(self.specs) if shape is None or s.shape == shape]

    def holding(self) -> int | None:
        """The object touched by both fingers while the gripper is closed, if any."""
        if self.robot is None or not self.robot.closed:
            return None
        uid = self.robot.uid
        left = {c[2] for c in self.p.getContactPoints(bodyA=uid, linkIndexA=9)}
        right = {c[2] for c in self.p.getContactPoints(bodyA=uid, linkIndexA=10)}
        both = left & right
        for oid, body in enumerate(self.uids, start=1):
            if body in both and self.specs[oid - 1].shape != "bowl":
                return oid
        return None

    def in_bowl(self, oid: int, bowl: int) -> bool:
        pos, centre = self.position(oid), self.position(bowl)
        inner = vocab.BOWL_RADIUS - vocab.BOWL_WALL
        return bool(np.linalg.norm(pos[:2] - centre[:2]) < inner - 0.01 and pos[2] < vocab.BOWL_HEIGHT + 0.06)

    def on(self, top: int, base: int) -> bool:
        a, b = self.position(top), self.position(base)
        expected = b[2] + (self.spec(top).height() + self.spec(base).height()) / 2
        half = self.spec(base).footprint() / 1.4142
        return bool(np.linalg.norm(a[:2] - b[:2]) < half and abs(a[2] - expected) < 0.012)

    def resting(self, oid: int) -> bool:
        """On the table or a support and not moving fast."""
        vel = np.array(self.p.getBaseVelocity(self.uids[oid - 1])[0])
        return bool(np.linalg.norm(vel) < 0.05)

    def close(self) -> None:
        try:
            self.p.disconnect()
        except pybullet.error:
            pass
