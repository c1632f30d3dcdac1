"""The Franka Panda: loading, end-effector control by inverse kinematics, gripper, proprioception."""
from __future__ import annotations

import numpy as np

from vla.envs.panda_urdf import STOCK_URDF, light_panda_urdf

ARM_JOINTS = list(range(7))
FINGER_JOINTS = [9, 10]
EE_LINK = 11  # panda_grasptarget, between the fingertips
HAND_LINK = 8
ARM_ONLY_LINKS = 6  # links below this index (base to link 6) do not collide
HOME_Q = np.array([0.0, -0.25, 0.0, -2.2, 0.0, 1.95, 0.785398])
LOWER = np.array([-2.9671, -1.8326, -2.9671, -3.1416, -2.9671, -0.0873, -2.9671])
UPPER = np.array([2.9671, 1.8326, 2.9671, 0.0, 2.9671, 3.8223, 2.9671])
ARM_FORCE = np.array([87.0, 87.0, 87.0, 87.0, 12.0, 12.0, 12.0]) * 2
FINGER_FORCE = 40.0
FINGER_OPEN = 0.04
#: the workspace the end effector is clipped to (x, y, z) in metres, robot base at the origin.
WS_LOW = np.array([0.25, -0.35, 0.005])
WS_HIGH = np.array([0.75, 0.35, 0.45])
YAW_LIMIT = np.pi / 2


class Panda:
    """A fixed-base Panda on the table edge, driven by position-controlled joints."""

    def __init__(self, bullet, light: bool = True):
        self.p = bullet
        urdf = light_panda_urdf() if light else str(STOCK_URDF)
        flags = bullet.URDF_USE_INERTIA_FROM_FILE
        self.uid = bullet.loadURDF(urdf, [0, 0, 0], useFixedBase=True, flags=flags)
        for link in range(-1, 12):
            bullet.changeDynamics(self.uid, link, linearDamping=0.0, angularDamping=0.0)
        for j in FINGER_JOINTS:
            bullet.changeDynamics(self.uid, j, lateralFriction=1.5, spinningFriction=0.01,
                                  frictionAnchor=True)
        for link in range(-1, ARM_ONLY_LINKS):  # the upper arm never reaches the objects: skip its contacts
            bullet.setCollisionFilterGroupMask(self.uid, link, 0, 0)
        # the two fingers move together
        c = bullet.createConstraint(self.uid, 9, self.uid, 10, bullet.JOINT_GEAR, [1, 0, 0], [0, 0, 0], [0, 0, 0])
        bullet.changeConstraint(c, gearRatio=-1, erp=0.1, maxForce=50)
        self.target_pos = np.zeros(3)
        self.target_yaw = 0.0
        self.home: tuple[np.ndarray, float] | None = None
        self.closed = False

    def reset(self) -> None:
        for j, q in zip(ARM_JOINTS, HOME_Q):
            self.p.resetJointState(self.uid, j, q)
        for j in FINGER_JOINTS:
            self.p.resetJointState(self.uid, j, FINGER_OPEN)
        pos, yaw = self.ee_pose()
        self.target_pos, self.target_yaw = pos.copy(), yaw
        self.home = (pos.copy(), yaw)           # the grasp point's pose at HOME_Q, where every episode starts
        self.closed = False
        self._drive(HOME_Q)

    def teleport(self, pos: np.ndarray, yaw: float, close: bool = False) -> None:
        """Put the arm where IK places the grasp point at (pos, yaw), fingers open or shut, without simulating the
        motion (for rendering training scenes); the controller then holds that pose."""
        for _ in range(3):                      # IK starts from the current joints: repeat to converge
            q = self.solve_ik(np.asarray(pos, dtype=np.float64), yaw)
            for j, value in zip(ARM_JOINTS, q):
                self.p.resetJointState(self.uid, j, float(value))
        for j in FINGER_JOINTS:
            self.p.resetJointState(self.uid, j, 0.0 if close else FINGER_OPEN)
        self.target_pos, self.target_yaw = self.ee_pose()
        self.closed = close
        self._drive(q)

    def ee_pose(self) -> tuple[np.ndarray, float]:
        """(position (3,), yaw) of the grasp point; yaw is the gripper's rotation about the vertical."""
        state = self.p.getLinkState(self.uid, EE_LINK, computeForwardKinematics=True)
        pos = np.array(state[4])
        rot = np.array(self.p.getMatrixFromQuaternion(state[5])).reshape(3, 3)
        yaw = float(np.arctan2(rot[1, 0], rot[0, 0]))
        return pos, yaw

    def opening(self) -> float:
        """Distance between the fingers in metres."""
        return float(sum(s[0] for s in self.p.getJointStates(self.uid, FINGER_JOINTS)))

    def joint_positions(self) -> np.ndarray:
        return np.array([s[0] for s in self.p.getJointStates(self.uid, ARM_JOINTS)])

    def state(self) -> np.ndarray:
        """(12,) = [ee x, y, z, yaw, gripper opening, q1..q7] in one pass over the joints."""
        pos, yaw = self.ee_pose()
        joints = [s[0] for s in self.p.getJointStates(self.uid, ARM_JOINTS + FINGER_JOINTS)]
        return np.array([*pos, yaw, joints[7] + joints[8], *joints[:7]], dtype=np.float32)

    def command_ee(self, delta: np.ndarray, close: bool) -> None:
        """Move the end-effector target by (dx, dy, dz, dyaw), clipped to the workspace; solve IK once."""
        self.target_pos = np.clip(self.target_pos + delta[:3], WS_LOW, WS_HIGH)
        self.target_yaw = float(np.clip(self.target_yaw + delta[3], -YAW_LIMIT, YAW_LIMIT))
        self._drive(self.solve_ik(self.target_pos, self.target_yaw))
        self.set_gripper(close)

    def command_joints(self, q: np.ndarray, close: bool) -> None:
        self._drive(np.clip(q, LOWER, UPPER))
        self.set_gripper(close)

    def solve_ik(self, pos: np.ndarray, yaw: float) -> np.ndarray:
        orn = self.p.getQuaternionFromEuler([np.pi, 0.0, yaw])
        q = self.p.calculateInverseKinematics(
            self.uid, EE_LINK, pos.tolist(), orn, lowerLimits=LOWER.tolist(), upperLimits=UPPER.tolist(),
            jointRanges=(UPPER - LOWER).tolist(), restPoses=HOME_Q.tolist(), maxNumIterations=40,
            residualThreshold=1e-5)
        return np.array(q[:7])

    def set_gripper(self, close: bool) -> None:
        self.closed = close
        target = 0.0 if close else FINGER_OPEN
        self.p.setJointMotorControlArray(self.uid, FINGER_JOINTS, self.p.POSITION_CONTROL,
                                         targetPositions=[target, target], forces=[FINGER_FORCE] * 2)

    def _drive(self, q: np.ndarray) -> None:
        self.p.setJointMotorControlArray(self.uid, ARM_JOINTS, self.p.POSITION_CONTROL, targetPositions=q.tolist(),
                                         forces=ARM_FORCE.tolist(), positionGains=[0.1] * 7)
