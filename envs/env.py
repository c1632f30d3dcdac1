"""The Gymnasium environment: a task on the tabletop, end-effector (or joint) control at 10 Hz, camera observations."""
from __future__ import annotations

import os
import string
import sys

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from vla import VLAError, did_you_mean
from vla.envs import camera as cam
from vla.envs import robot as rb
from vla.envs.oracle import Oracle
from vla.envs.splits import get_split
from vla.envs.tasks import TASKS
from vla.envs.tasks.base import PlacementError, Sampler
from vla.envs.world import World

ACTION_LOW = np.array([-0.05, -0.05, -0.05, -0.3, 0.0], dtype=np.float32)
ACTION_HIGH = np.array([0.05, 0.05, 0.05, 0.3, 1.0], dtype=np.float32)
CHARSET = string.ascii_letters + string.digits + " ,.;:'!?-()"
MAX_INSTRUCTION = 256
MAX_IMAGE = (640, 480)
#: fingers closed nearer than this (metres) hold nothing: the narrowest graspable object is 4 cm across
EMPTY_GRIP = 0.01
#: an object's centre this far beyond the grasp point's workspace is still between the open fingers
REACH_SLACK = 0.01
OFF_TABLE_Z = -0.02    # an object's centre below this has fallen off the table
HAS_DISPLAY = not sys.platform.startswith("linux") or bool(os.environ.get("DISPLAY"))


def _image_size(image_size) -> tuple[int, int] | None:
    """(W, H) from an int or a pair; 0/None means no cameras (state-only observations)."""
    if not image_size:
        return None
    w, h = (image_size, image_size) if np.isscalar(image_size) else tuple(image_size)
    if not (8 <= int(w) <= MAX_IMAGE[0] and 8 <= int(h) <= MAX_IMAGE[1]):
        raise VLAError(f"image_size {image_size!r} is out of range; width 8-640 and height 8-480 are allowed.")
    return int(w), int(h)


class VLAEnv(gym.Env):
    """One task family on one split; `reset(options={"instruction": ...})` builds the scene from a sentence."""

    # "human" (the PyBullet GUI) is offered only where a display exists
    metadata = {"render_modes": ["rgb_array"] + (["human"] if HAS_DISPLAY else []), "render_fps": 10}

    def __init__(self, task: str = "reach", split: str = "seen", image_size=128, wrist: bool = False,
                 depth: bool = False, segmentation: bool = False, control: str = "ee", render_mode=None,
                 max_steps: int | None = None, light_robot: bool = True, distractors: tuple[int, int] = (1, 3)):
        if task not in TASKS:
            raise VLAError(f"unknown task {task!r}; " + did_you_mean(task, TASKS))
        if control not in ("ee", "joint"):
            raise VLAError(f"unknown control mode {control!r}; allowed: ee, joint.")
        if render_mode not in (None, "rgb_array", "human"):
            raise VLAError(f"unknown render_mode {render_mode!r}; allowed: None, rgb_array, human.")
        self.task_name, self.split = task, get_split(split)
        self.size = _image_size(image_size)
        self.wrist, self.depth, self.seg = wrist, depth, segmentation
        self.control, self.render_mode, self.max_steps_override = control, render_mode, max_steps
        self.n_distractors = distractors
        self.world = World(gui=render_mode == "human", light_robot=light_robot)
        self.camera = cam.Camera(self.world.p, *(self.size or (128, 128)))
        if self.size and render_mode != "human":
            self._cache_background()
        self.tasks = {name: cls() for name, cls in TASKS.items()}
        self.observation_space = self._observation_space()
        if control == "ee":
            self.action_space = spaces.Box(ACTION_LOW, ACTION_HIGH, dtype=np.float32)
        else:
            self.action_space = spaces.Box(np.r_[rb.LOWER, 0.0].astype(np.float32),
                                           np.r_[rb.UPPER, 1.0].astype(np.float32), dtype=np.float32)
        self.task = self.tasks[task]
        self.goal = None
        self.instruction = ""
        self.steps = 0

    def _cache_background(self) -> None:
        from vla.envs.world import static_scene_client

        static = static_scene_client()
        self.camera.cache_background(static)
        static.disconnect()
        self.world.table_in_background = True

    def _observation_space(self) -> spaces.Dict:
        obs = {"state": spaces.Box(-10.0, 10.0, (12,), np.float32),
               "instruction": spaces.Text(MAX_INSTRUCTION, min_length=1, charset=CHARSET)}
        if self.size:
            w, h = self.size
            obs["front"] = spaces.Box(0, 255, (h, w, 3), np.uint8)
            if self.wrist:
                obs["wrist"] = spaces.Box(0, 255, (h, w, 3), np.uint8)
            if self.depth:
                obs["front_depth"] = spaces.Box(0.0, cam.FAR, (h, w), np.float32)
            if self.seg:
                obs["front_seg"] = spaces.Box(-1, 1000, (h, w), np.int32)
        return spaces.Dict(obs)

    @property
    def max_steps(self) -> int:
        return self.max_steps_override or self.task.MAX_STEPS

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        text, objects = (options or {}).get("instruction"), (options or {}).get("objects")
        parsed = None
        if text is not None:
            from vla.envs.instruction import parse_instruction

            parsed = parse_instruction(text)
        for _ in range(50):  # placement can fail on a crowded table: resample
            sampler = Sampler(self.np_random, self.split, parsed.task if parsed else self.task_name)
            try:
                task, goal, text_out = self._sample(sampler, parsed, objects)
                break
            except PlacementError:
                continue
        else:
            raise VLAError(f"could not sample a scene for task {self.task_name!r}; try another seed.")
        sampler.distractors(int(self.np_random.integers(self.n_distractors[0], self.n_distractors[1] + 1)))
        self.task, self.goal, self.instruction = task, goal, text_out
        self.world.build(sampler.specs)
        self.oracle = Oracle(lambda world: self.task.plan(world, self.goal))
        self.steps = 0
        self._pending = None  # joint mode: (joint action, ee target) last proposed by the oracle
        return self._obs(), self._info(False)

    def _sample(self, sampler: Sampler, parsed, objects: list | None = None):
        if objects is not None:
            return self._scene_from_objects(sampler, objects)
        if parsed is not None:
            task = self.tasks[parsed.task]
            return task, task.goal_from_slots(parsed.slots, sampler), parsed.text
        task = self.tasks[self.task_name]  # the env's own task, whatever an instruction set last
        goal = task.sample(sampler)
        template = int(self.np_random.choice(self.split.template_indices(len(task.TEMPLATES))))
        return task, goal, task.instruction(goal, template)

    def _scene_from_objects(self, sampler: Sampler, objects: list):
        """A scene holding the listed objects ({"color", "shape", "size"}); the goal is to touch the first."""
        from vla.envs.scene_options import add_objects
        from vla.envs.tasks.reach import ReachGoal

        oids = add_objects(sampler, objects)
        task, goal = self.tasks["reach"], ReachGoal(sampler.ref(oids[0], exact=True))
        return task, goal, task.instruction(goal, 0)

    def set_instruction(self, text: str, prefer=()):
        """Give a new goal on the current scene without resetting physics; returns (obs, info).

        The sentence is parsed like `reset(options={"instruction": ...})` and its objects are bound to objects
        already in the scene (VLAError when one is missing). Where the words fit several alike objects ("the pink
        block" with two on the table) the one among the ids in `prefer` is bound: a caller that has grounded the
        sentence says which it meant. The step counter restarts from zero.
        """
        from vla.envs.binding import Binder
        from vla.envs.instruction import parse_instruction

        parsed = parse_instruction(text)
        task = self.tasks[parsed.task]
        goal = task.goal_from_slots(parsed.slots, Binder(self.world, self.np_random, self.split, parsed.task, prefer))
        self.task, self.goal, self.instruction = task, goal, parsed.text
        self.oracle = Oracle(lambda world: self.task.plan(world, self.goal))
        self.steps, self._pending = 0, None
        self.task.progress(self.world, self.goal)
        return self._obs(), self._info(self.task.success(self.world, self.goal))

    def step(self, action):
        action = np.asarray(action, dtype=np.float64).reshape(-1)
        if action.shape != self.action_space.shape or not np.all(np.isfinite(action)):
            raise VLAError(f"action must be {self.action_space.shape[0]} finite numbers; got {action.tolist()}.")
        action = np.clip(action, self.action_space.low, self.action_space.high)
        robot = self.world.robot
        if self.control == "ee":
            robot.command_ee(action[:4], bool(action[4] >= 0.5))
        else:
            robot.command_joints(action[:7], bool(action[7] >= 0.5))
        self.world.step()
        if self.control == "joint":  # keep the oracle's end-effector target when its own action was applied
            pending = self._pending
            same = pending is not None and np.array_equal(action, pending[0])
            robot.target_pos, robot.target_yaw = (pending[1], pending[2]) if same else robot.ee_pose()
        self.steps += 1
        self.task.progress(self.world, self.goal)
        success = self.task.success(self.world, self.goal)
        truncated = self.steps >= self.max_steps and not success
        return self._obs(), float(success), success, truncated, self._info(success)

    def oracle_action(self, on_policy: bool = False) -> np.ndarray:
        """The scripted expert's action for the current state (privileged simulator state); `on_policy` for a
        state another controller drove the arm into (a fresh plan resumed where the arm is, see Oracle)."""
        action = self.oracle.act_on_policy(self.world) if on_policy else self.oracle.act(self.world)
        if self.control == "ee":
            return action
        robot = self.world.robot
        pos = np.clip(robot.target_pos + action[:3], rb.WS_LOW, rb.WS_HIGH)
        yaw = float(np.clip(robot.target_yaw + action[3], -rb.YAW_LIMIT, rb.YAW_LIMIT))
        joint_action = np.r_[robot.solve_ik(pos, yaw), action[4]].astype(np.float32)
        self._pending = (np.clip(joint_action.astype(np.float64), self.action_space.low, self.action_space.high),
                         pos, yaw)
        return joint_action

    def home_action(self, tolerance: float = 0.01) -> np.ndarray | None:
        """A step of the arm's way back to its start pose: up to the start height first, then across, so it does not
        sweep the table. What the gripper holds stays held; a gripper closed on nothing opens, as every episode
        starts open. None once within `tolerance` metres (and 0.05 rad) of that pose with the gripper so. A scripted
        motion, like a real arm's move to a named pose."""
        robot = self.world.robot
        if robot.home is None:
            raise VLAError("the env must be reset before the arm can go home.")
        (home, home_yaw), (pos, yaw) = robot.home, robot.ee_pose()
        delta, dyaw = home - pos, home_yaw - yaw
        empty = self.gripper_empty()
        if np.linalg.norm(delta) <= tolerance and abs(dyaw) <= 0.05 and not empty:
            return None
        grip = 1.0 if robot.closed and not empty else 0.0
        # an end-effector action moves the commanded target, which the arm follows a step late: steps towards home
        # from the measured pose overshot it and swung the wrist ever wider (4 of 20 random arms 1-3 rad off after
        # 60 steps); joint targets are solved from the measured pose
        ee = self.control == "ee"
        step, turn = (home - robot.target_pos, home_yaw - robot.target_yaw) if ee else (delta, dyaw)
        if delta[2] > 0.03:                       # still low: rise before moving across
            step[:2] = 0.0
        if ee:
            return np.r_[np.clip(step, ACTION_LOW[:3], ACTION_HIGH[:3]),
                         np.clip(turn, ACTION_LOW[3], ACTION_HIGH[3]), grip].astype(np.float32)
        step = np.clip(step, ACTION_LOW[:3], ACTION_HIGH[:3])
        target = np.clip(pos + step, rb.WS_LOW, rb.WS_HIGH)
        turn = float(np.clip(yaw + np.clip(turn, ACTION_LOW[3], ACTION_HIGH[3]), -rb.YAW_LIMIT, rb.YAW_LIMIT))
        return np.r_[robot.solve_ik(target, turn), grip].astype(np.float32)

    def _obs(self) -> dict:
        obs = {"state": self.world.robot.state(), "instruction": self.instruction}
        if self.size:
            frame = self.camera.render(depth=self.depth, seg=self.seg)
            obs["front"] = frame.rgb
            if self.depth:
                obs["front_depth"] = np.clip(frame.depth, 0.0, cam.FAR)
            if self.seg:
                obs["front_seg"] = self._object_ids(frame.seg)
            if self.wrist:
                obs["wrist"] = self._wrist_image()
        return obs

    def _wrist_image(self) -> np.ndarray:
        """The wrist camera moves, so the table is drawn for it (not taken from the background layer)."""
        from vla.envs.world import set_table_visible

        state = self.world.p.getLinkState(self.world.robot.uid, rb.HAND_LINK)
        set_table_visible(self.world, True)
        image = self.camera.render(view=self.camera.wrist_view(state[4], state[5])).rgb
        set_table_visible(self.world, not self.world.table_in_background)
        return image

    def _object_ids(self, seg: np.ndarray) -> np.ndarray:
        """Body uids -> annotation object ids (1..N); 0 for table, robot and background."""
        lut = np.zeros(max(self.world.uids + [self.world.robot.uid, self.world.table]) + 2, dtype=np.int32)
        for oid, uid in enumerate(self.world.uids, start=1):
            lut[uid + 1] = oid
        return lut[np.clip(seg, -1, len(lut) - 2) + 1]

    def _info(self, success: bool) -> dict:
        return {"is_success": bool(success), "task": self.task.NAME, "instruction": self.instruction,
                "split": self.split.name, "step": int(self.steps)}

    def gripper_empty(self) -> bool:
        """The gripper is commanded shut but its fingers closed on nothing (opening below `EMPTY_GRIP`): a grasp
        that missed, or an object that slipped out. What a real gripper's width reading tells."""
        robot = self.world.robot
        return bool(robot.closed and robot.opening() < EMPTY_GRIP)

    def out_of_reach(self, position) -> str | None:
        """Why the arm cannot get at an object centred at `position` (x, y, z metres): it has fallen off the table,
        or it lies beyond the workspace the grasp point is kept in (by more than `REACH_SLACK`); None if it can."""
        x, y, z = (float(v) for v in position)
        if z < OFF_TABLE_Z:
            return "has fallen off the table"
        low, high = rb.WS_LOW[:2] - REACH_SLACK, rb.WS_HIGH[:2] + REACH_SLACK
        if not (low[0] <= x <= high[0] and low[1] <= y <= high[1]):
            return "lies beyond the arm's reach"
        return None

    def scene_annotation(self) -> dict:
        from vla.envs.annotation import scene_annotation

        return scene_annotation(self.world)

    def render(self):
        if self.render_mode == "rgb_array":
            return self.camera.render().rgb if self.size else cam.Camera(self.world.p, 128, 128).render().rgb
        return None

    def close(self):
        self.world.close()
