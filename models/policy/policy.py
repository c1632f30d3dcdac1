"""The policy interface around `VLANet`: `reset`, `select_action(obs)`, `forward(batch)`, save and load.

A checkpoint holds the fully resolved `PolicyConfig` (config.json), the weights (model.safetensors), the
dataset statistics plus the action space the policy was trained for (stats.json) and the tokenizer (tokenizer/).
"""
from __future__ import annotations

from collections import deque
from pathlib import Path

import numpy as np
import torch

from vla import ROOT, VLAError
from vla.models.checkpoint import read_checkpoint, write_checkpoint
from vla.models.config import from_dict, to_dict
from vla.models.llm import build_word_tokenizer, load_tokenizer
from vla.models.policy.config import COMMANDS, DECODING, REPLAN, PolicyConfig
from vla.models.policy.hold import GraspHold
from vla.models.policy.steps import CommandSteps
from vla.models.policy.vla import VLANet

DEFAULT_POLICY = ROOT / "models" / "weights" / "policy"
GOAL_SOURCES = ("auto", "own", "given")


class VLAPolicy:
    def __init__(self, cfg: PolicyConfig, tokenizer, stats: dict, load_weights: bool = True):
        self.cfg, self.stats = cfg, stats
        self.net = VLANet(cfg.model, tokenizer, stats, load_weights)
        self._queue: deque = deque()
        self.ensemble = 0.0            # temporal ensembling weight decay (0 = off), see select_action
        self.goal = "auto"             # where the grounding token's goal comes from, see configure
        self._last_goal = None         # the goal pointer's last goal (it keeps a choice between look-alikes)
        self._point = None             # a table point the caller says the goal is at (see `point`)
        self._history: deque = deque()  # (chunk (K, D), steps since it was predicted) under ensembling
        self.predictions = 0           # chunks `select_action` has predicted (never reset: callers take differences)
        self.steps = CommandSteps()    # which command of a chained instruction is current (`commands: steps`)
        self.hold = GraspHold()        # a grasp kept rather than reopened away from the goal (`hold: true`)

    @classmethod
    def create(cls, cfg: PolicyConfig, stats: dict, sentences: list[str]) -> "VLAPolicy":
        """A fresh policy; the default tokenizer is built from `sentences` unless the LM brings its own."""
        llm = cfg.model.llm
        words = list(cfg.model.word_rgb or {})
        tokenizer = load_tokenizer(llm.pretrained) if llm.pretrained else build_word_tokenizer([*sentences, *words])
        return cls(cfg, tokenizer, stats)

    @property
    def device(self) -> torch.device:
        return self.net.action_queries.device

    def to(self, device) -> "VLAPolicy":
        self.net.to(device)
        return self

    def forward(self, batch: dict, generator: torch.Generator | None = None):
        return self.net(batch, generator)

    def reset(self) -> None:
        self._restart()
        self._point = None
        self.steps.reset()
        self.hold.reset()

    def point(self, xy) -> None:
        """Say where the object the goal belongs to lies (a table point in metres; None: let the goal pointer
        choose again). Until changed, every chunk's goal is the detected object nearest it (within
        `goal.POINT_RADIUS`), however unlikely the pointer finds it: the camera says where, the caller which. Where
        the camera shows nothing that near, the point itself. An agent that has grounded "the red block" among
        look-alikes points at it, and at the bowl once it has lifted it. Needs an attached goal pointer; `reset`
        clears it."""
        if xy is None:
            self._point = None
            return
        if not self.can_point:
            raise VLAError("pointing needs a policy with an attached goal pointer (vla train goal --attach) and "
                           "goal='auto'.")
        xy = np.asarray(xy, dtype=np.float32).reshape(-1)
        if xy.shape != (2,) or not np.isfinite(xy).all():
            raise VLAError(f"a point is one finite (x, y) table position in metres, got {xy.tolist()}.")
        self._point = torch.as_tensor(xy).reshape(1, 2)

    @property
    def can_point(self) -> bool:
        return self.net.goal_pointer is not None and self.goal == "auto"

    def configure(self, decoding: str | None = None, execute: int | None = None,
                  ensemble: float | None = None, goal: str | None = None, replan: str | None = None,
                  commands: str | None = None, hold: bool | None = None,
                  push_end: bool | None = None) -> "VLAPolicy":
        """Change inference settings of a loaded policy (None keeps the checkpoint's).

        `replan`: "chunk" (a new chunk after `execute` actions) or "adaptive" (after every action, but a chunk
        that starts with a pause or switches the gripper runs for `execute` actions; see `ActionConfig.replan`).

        `commands`: "whole" (the instruction as given) or "steps" (a chained instruction one command at a time,
        see `ActionConfig.commands`). `hold`: keep a grasp rather than reopen away from the goal (`ActionConfig.hold`).
        `push_end`: the goal pointer gives a push the point where the expert's push would end (`GoalConfig.push_end`;
        needs an attached pointer).

        `goal`: "auto" (the attached goal pointer's, else the grounding head's own), "own" (the grounding head's
        even with a pointer attached: the policy without it) or "given" (the caller passes one to
        `select_action`, e.g. the oracle's, to measure what a perfect goal is worth).

        `ensemble` > 0 turns on ACT-style temporal ensembling: a chunk is predicted at every step and the action
        taken is the average of every live chunk's prediction for this step, the chunk predicted i steps ago
        weighted exp(-ensemble * i).
        """
        act = self.cfg.model.action
        if goal is not None:
            if goal not in GOAL_SOURCES:
                raise VLAError(f"unknown goal source {goal!r}; choose {', '.join(GOAL_SOURCES)}.")
            if goal != "auto" and not self.cfg.model.ground_goal:
                raise VLAError(f"goal={goal!r} needs a policy whose grounding token carries a goal "
                               "(model.ground_goal); this one has none.")
            self.goal = goal
        if ensemble is not None:
            if not (ensemble >= 0 and np.isfinite(ensemble)):
                raise VLAError(f"ensemble must be a finite number >= 0 (got {ensemble}).")
            self.ensemble = float(ensemble)
        if decoding is not None:
            if decoding not in DECODING:
                raise VLAError(f"unknown decoding {decoding!r}; choose {' or '.join(DECODING)}.")
            act.decoding = decoding
        if execute is not None:
            if not 1 <= execute <= act.horizon:
                raise VLAError(f"execute must be between 1 and the chunk length {act.horizon} (got {execute}).")
            act.execute = execute
        if replan is not None:
            if replan not in REPLAN:
                raise VLAError(f"unknown replan {replan!r}; choose {' or '.join(REPLAN)}.")
            act.replan = replan
        if commands is not None:
            if commands not in COMMANDS:
                raise VLAError(f"unknown commands {commands!r}; choose {' or '.join(COMMANDS)}.")
            act.commands = commands
        if hold is not None:
            act.hold = bool(hold)
        if push_end is not None:
            if self.net.goal_pointer is None:
                raise VLAError("push_end needs a policy with an attached goal pointer (vla train goal --attach).")
            self.net.goal_pointer.cfg.push_end = bool(push_end)
        self.reset()
        return self

    def check_action_space(self, space) -> None:
        """Raise VLAError unless `space` (a gymnasium Box) is the action space this policy was trained for."""
        want = self.stats.get("action_space")
        shape = tuple(getattr(space, "shape", ()) or ())
        if shape != (self.cfg.model.action.dim,):
            raise VLAError(f"this policy emits {self.cfg.model.action.dim}-d actions but the env's action space "
                           f"has shape {shape}; use an env with the same control mode (ee).")
        if want and not (np.allclose(space.low, want["low"]) and np.allclose(space.high, want["high"])):
            raise VLAError("the env's action bounds differ from those the policy was trained for "
                           f"(trained low={want['low']}, high={want['high']}).")

    @torch.no_grad()
    def predict_chunk(self, obs: dict, decoding: str | None = None, goal=None) -> np.ndarray:
        """One observation (as the env returns it) -> (K, D) actions. `goal`: (x, y) in metres for the grounding
        token to carry (with `configure(goal="given")`)."""
        if "front" not in obs or "state" not in obs or "instruction" not in obs:
            raise VLAError("the observation must hold 'front', 'state' and 'instruction'.")
        image = torch.as_tensor(np.ascontiguousarray(obs["front"]))[None]               # (1, H, W, 3) uint8
        state = torch.as_tensor(np.asarray(obs["state"], dtype=np.float32))[None]      # (1, 12)
        if state.shape[1] != self.cfg.model.state_dim:
            raise VLAError(f"observation state has {state.shape[1]} values; the policy expects "
                           f"{self.cfg.model.state_dim}.")
        self.net.eval()
        if self.goal == "given" and goal is None:
            raise VLAError('this policy is configured with goal="given": pass a goal to select_action.')
        texts = [str(obs["instruction"])]
        given = None if goal is None or self.goal != "given" else \
            torch.as_tensor(np.asarray(goal, np.float32)).reshape(1, 2)
        if given is None and self.goal == "auto" and self.net.goal_pointer is not None:
            exclude = self.hold.done_with() if self.cfg.model.action.hold else None
            given = self.net.goal_pointer.predict(image.to(self.device), texts, state, previous=self._last_goal,
                                                  point=self._point, exclude=exclude)
            self._last_goal = given
        chunk = self.net.predict_chunk(image.to(self.device), state, texts, decoding, goal=given,
                                       pointer=self.goal == "auto")
        return chunk[0].cpu().numpy().astype(np.float32)

    @property
    def wants_observation(self) -> bool:
        """Whether the next `select_action` predicts a new chunk (so a given goal is read)."""
        return self.ensemble > 0 or not self._queue

    def select_action(self, obs: dict, goal=None) -> np.ndarray:
        """Next action (D,): pops a queue refilled with the first `execute` actions of a new chunk (or, with
        temporal ensembling, averages the predictions every recent chunk made for this step). With `commands:
        steps` a chained instruction is followed one command at a time (`CommandSteps`); with `hold` a grasp is
        kept rather than reopened away from the goal (`GraspHold`)."""
        act = self.cfg.model.action
        if act.commands == "steps":
            if self.steps.text is not None and self.steps.text != str(obs.get("instruction")):
                self._restart()                      # a new instruction mid-way (a ROS 2 node gets them so)
            text = self.steps.instruction(obs)
            if self.steps.homing:
                space = self.stats.get("action_space") or {}
                home = self.steps.home_action(obs["state"], space.get("low", self.stats["action"]["q01"]),
                                              space.get("high", self.stats["action"]["q99"]))
                if home is not None:
                    return home
                self._restart()                      # the next command starts afresh
            obs = {**obs, "instruction": text}
        if not act.hold and act.commands == "whole":
            return self._next_action(obs, goal)
        action = self.hold.pending.pop(0) if self.hold.pending else self._next_action(obs, goal)
        chosen = goal if self.goal == "given" else self._last_goal
        if torch.is_tensor(chosen):
            chosen = chosen.detach().cpu().numpy()
        if act.hold:
            action, scripted = self.hold.filter(obs["state"], action, chosen)
            if scripted:                             # plan afresh once the arm has risen
                self._queue.clear()
                self._history.clear()
        if act.commands == "steps":
            self.steps.observe(obs["state"], action, chosen)
        return action

    def _restart(self) -> None:
        self._queue.clear()
        self._history.clear()
        self._last_goal = None
        self.hold.reset(episode=False)

    def _next_action(self, obs: dict, goal=None) -> np.ndarray:
        if self.ensemble > 0:
            return self._ensembled(obs, goal)
        if not self._queue:
            chunk = self.predict_chunk(obs, goal=goal)
            self.predictions += 1
            self._queue.extend(chunk[: self.actions_to_take(chunk)])
        return self._queue.popleft()

    def actions_to_take(self, chunk: np.ndarray) -> int:
        """How many actions of a new chunk (K, D) run before the next prediction (`ActionConfig.replan`)."""
        act = self.cfg.model.action
        if act.replan == "chunk":
            return act.execute
        grip = list(act.gripper_dims)
        pause = bool(np.abs(chunk[0, list(act.pause_dims)]).max() <= act.pause_tol)
        switch = bool((chunk[:, grip] != chunk[:1, grip]).any())
        return act.execute if pause or switch else 1

    def _ensembled(self, obs: dict, goal=None) -> np.ndarray:
        K = self.cfg.model.action.horizon
        self._history.appendleft([self.predict_chunk(obs, goal=goal), 0])
        self.predictions += 1
        while self._history and self._history[-1][1] >= K:
            self._history.pop()
        preds = np.stack([chunk[age] for chunk, age in self._history])                # newest first
        weights = np.exp(-self.ensemble * np.arange(len(preds)))
        action = (weights[:, None] * preds).sum(0) / weights.sum()
        for item in self._history:
            item[1] += 1
        gripper = list(self.cfg.model.action.gripper_dims)
        action[gripper] = preds[0][gripper]          # binary gripper: the newest chunk decides
        return action.astype(np.float32)

    def save(self, path: str | Path, dtype: torch.dtype | None = None, json_files: dict | None = None,
             tensor_files: dict | None = None) -> Path:
        """Write the checkpoint directory atomically (weights cast to `dtype` if given, e.g. for shipping)."""
        return write_checkpoint(path, config=to_dict(self.cfg), state_dict=self.net.state_dict(),
                                json_files={"stats.json": self.stats, **(json_files or {})},
                                tensor_files=tensor_files, tokenizer=self.net.tokenizer, dtype=dtype)


def resolve_policy_path(path: str | Path) -> Path:
    return DEFAULT_POLICY if str(path) == "default" else Path(path)


def load_policy(path: str | Path = "default", device: str = "cpu") -> VLAPolicy:
    """Load a policy checkpoint directory ("default" = the shipped weights) for inference or fine-tuning."""
    path = resolve_policy_path(path)
    if str(path) != str(DEFAULT_POLICY) and not path.exists():
        raise VLAError(f"policy checkpoint {str(path)!r} does not exist.")
    if not path.exists():
        raise VLAError("no default policy is shipped yet at models/weights/policy; train one with `vla train policy`.")
    ckpt = read_checkpoint(path)
    cfg = from_dict(PolicyConfig, ckpt.config).validate()
    policy = VLAPolicy(cfg, load_tokenizer(ckpt.tokenizer_dir), ckpt.json_files["stats.json"], load_weights=False)
    state = {k: v.float() if v.is_floating_point() else v for k, v in ckpt.state_dict.items()}
    missing, unexpected = policy.net.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise VLAError(f"checkpoint {str(path)!r} does not match its config "
                       f"(missing {len(missing)} tensors, unexpected {len(unexpected)}).")
    return policy.to(device)
