"""Policy configs: typed dataclasses with presets as YAML data in configs/policy/<name>.yaml."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from vla import ROOT, VLAError, did_you_mean
from vla.models.config import apply_overrides, from_dict, load_yaml
from vla.models.llm import LLMConfig
from vla.models.qformer import BridgeConfig
from vla.models.vision import VisionConfig

PRESET_DIR = ROOT / "configs" / "policy"
DECODING = ("parallel", "autoregressive")
REPLAN = ("chunk", "adaptive")
COMMANDS = ("whole", "steps")
GROUND_GOALS = ("", "patch", "pixel")


@dataclass
class ActionConfig:
    dim: int = 5
    horizon: int = 8                 # K future actions per chunk
    execute: int = 8                 # actions taken from each chunk before predicting the next (<= horizon)
    n_bins: int = 256
    gripper_dims: tuple[int, ...] = (4,)
    decoding: str = "parallel"       # "parallel" (one forward per chunk) | "autoregressive" (KV cache)
    # Soft targets for the bin tokens: a Gaussian over neighbouring bins with this std (in bins) instead of a
    # one-hot, so the cross-entropy knows bin 30 is nearer 31 than 60 ("HL-Gauss"). 0 = plain one-hot.
    label_sigma: float = 0.0
    # When to predict the next chunk (inference only): "chunk" after `execute` actions; "adaptive" after every
    # action (receding horizon: the later slots of a chunk are open loop, and a descent planned 3 steps ahead
    # ended 1-1.5 cm low, where the fingers drag on the table), except that a chunk whose first action is a
    # pause (no `pause_dims` move beyond `pause_tol`) or that switches the gripper runs for `execute` actions.
    # A pause leaves the image as it was, so a policy that plans again after it sees the same input and pauses
    # again: the demos pause before and after closing, and replanning at every step never closed the gripper.
    replan: str = "chunk"
    pause_dims: tuple[int, ...] = (0, 1, 2)
    pause_tol: float = 0.005
    # Chained commands ("touch X, then push Y"; inference only): "whole" hands the policy the whole instruction;
    # "steps" hands it one command at a time, judged done from the policy's own observations and actions, with
    # the arm driven back to its start pose in between (vla.models.policy.steps, docs/POLICY.md item 20).
    commands: str = "whole"
    # Keep a grasp (inference only): once the fingers have closed on something, an action that reopens them away
    # from the goal becomes a short lift, a release over the goal is followed by a rise with the fingers open, and
    # the policy plans again (vla.models.policy.hold, docs/POLICY.md item 20).
    hold: bool = False


@dataclass
class ModelConfig:
    vision: VisionConfig = field(default_factory=VisionConfig)
    bridge: BridgeConfig = field(default_factory=BridgeConfig)
    llm: LLMConfig = field(default_factory=LLMConfig)
    action: ActionConfig = field(default_factory=ActionConfig)
    state_dim: int = 12
    state_token: bool = True         # proprio state enters as one extra LM token
    # Which state values the token sees (None = all). Feeding the end-effector x, y (or the joints, which imply
    # them) lets a behaviour-cloned policy extrapolate its own displacement from the start pose instead of
    # looking for the goal (the "copycat" shortcut); the `cpu` preset keeps z, yaw and the gripper opening.
    state_dims: list[int] | None = None
    max_text_tokens: int = 32        # instructions are truncated to this many tokens
    word_dropout: float = 0.1        # training only: words replaced by [UNK] with this probability
    # Grounded colour words: word -> RGB. Their embeddings are an MLP of the RGB value instead of a table row,
    # so a colour word never seen in training still lands near similar colours. Filled from the env's
    # vocabulary by the training runner when `ground_colors` is true.
    ground_colors: bool = False
    word_rgb: dict[str, list[float]] | None = None
    # Auxiliary loss weight for predicting the scripted expert's waypoint and skill goal (x, y, z, yaw, gx, gy)
    # from `aux_source`; labels come from replaying the demos (vla.agent.train.labels).
    aux_waypoint: float = 0.0
    aux_source: str = "bridge"       # "bridge" (vision tokens only: forces the camera to be used) | "lm"
    # A grounding head (see vla.models.policy.grounding.GroundingHead) adds one LM token: where the current step's
    # object is. With oracle labels it is trained against the goal's patch, weighted by grounding_loss.
    grounding: bool = False
    grounding_loss: float = 1.0
    # The grounding head also estimates the goal's table position (x, y, robot frame) and its LM token carries
    # that position and its offset from the end effector: "" (off) | "patch" (every patch near the goal
    # regresses it) | "pixel" (a small text-conditioned conv net scores a stride-2 pixel grid on top of the
    # patch scores; the soft-argmax pixel is mapped to the table by a learned camera map). Both are trained on
    # the oracle labels; "pixel" needs data.shift = 0 (a shifted image moves the pixel but not the table).
    ground_goal: str = ""
    # Training only: the probability that this token carries the oracle's goal (plus 5 mm noise) instead of the
    # estimate. A goal that is often wrong in training teaches the LM to trust it only partly, so it under-shoots
    # (errors in variables); mostly exact goals teach the offset -> action map sharply. A resumed run takes this
    # (and word_dropout) from its command, the architecture from the checkpoint.
    ground_teacher: float = 0.0
    # The grounding head also sees, for each of the first `ground_color_maps` colour words of the instruction (in
    # order), a per-pixel match of the camera image against that word's RGB value (word_rgb), shading-invariant
    # (see vla.models.policy.grounding.color_match_maps). Colour is a word's value, not a learnt class, so a colour
    # never seen in training is found as readily as a seen one. Needs ground_colors and grounding.
    ground_color_maps: int = 0
    # Referring expressions ("the small red block", "the red block left of the pink bowl") pick one of two twins
    # by size or by side. With this on, the grounding head also scores every patch by geometry read from the
    # colour-match maps: its offset from each map's centroid (where the named landmark, or the twins' midpoint,
    # is) and the largest matching blob area in it (size, with its image row for perspective), weighted by an
    # instruction-dependent vector (a bilinear term, zero at first). Needs ground_color_maps.
    ground_relations: bool = False
    # Inference only ("pixel"): the goal pixel is the soft-argmax within this many cells (of the stride-2 grid) of
    # the best-scoring cell instead of over the whole image, so that a head torn between two look-alikes commits
    # to one of them rather than to the table between them. 0 = the whole image (as in training). No weights.
    ground_peak: int = 0
    # "pixel" only: a small U-Net of this many stride-2 levels over the pixel branch's features, FiLM-conditioned
    # on the instruction and state at every level, whose scores are added to the pixel scores. Without it the
    # branch sees 9x9 pixels around each one: enough for a colour, not for a block's size or a bowl beside it.
    # Its output layer starts at zero, so `train.init` can add it to a trained checkpoint. 0 = none.
    ground_pixel_depth: int = 0
    # Inference only: a goal pointer (vla.models.goal; its GoalConfig here, its weights under `goal_pointer.`)
    # picks the instruction's current object among detected objects, and the grounding token carries its goal
    # instead of the head's own estimate (which stays the fallback when nothing is detected). Trained apart on
    # oracle frames and attached to a trained policy by `vla train goal --attach`. Needs ground_goal.
    goal_pointer: dict | None = None


@dataclass
class DataConfig:
    root: str = "data/seen128"       # a dataset directory, or several comma-separated (trained on together)
    max_episodes: int | None = None
    shift: int = 4                   # random image shift augmentation in pixels (0 = off)
    # Share of training frames recoloured by a random linear colour transform (channel permutation, desaturation,
    # brightness) applied to the image and to the colour words' RGB values alike, so that grounding learns to
    # match a word's colour value rather than a fixed set of colours. Needs model.ground_colors.
    color_aug: float = 0.0
    label_workers: int = 2           # processes replaying episodes for oracle labels (aux_waypoint / grounding)
    # Start-of-episode scenes (arm at home) added to the frames for the grounding and waypoint losses only: a demo
    # shows the arm at home for a frame or two, then the arm's own path gives the goal away, so the grounding
    # learns to follow the arm. reset_scenes frames of the `seen` split's tasks are rendered once (cached in the
    # dataset's meta/), and reset_share of every batch comes from them. See vla.agent.train.scenes.
    reset_scenes: int = 0
    reset_share: float = 0.25
    reset_arm: float = 0.0           # share of those scenes with the arm teleported to a random pose instead


@dataclass
class TrainConfig:
    steps: int = 3000
    batch_size: int = 32
    grad_accum: int = 1
    lr: float = 3e-4
    min_lr_ratio: float = 0.05
    warmup_steps: int = 100
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    seed: int = 0
    save_every: int = 500
    keep_last: int = 2
    log_every: int = 10
    device: str = "auto"             # "auto" | "cpu" | "cuda"
    bf16: bool = True                # bf16 autocast on CUDA
    compile: bool = False
    threads: int = 0                 # torch CPU threads (0 = torch's default)
    out_dir: str = ""                # default runs/policy/<name>
    init: str = ""                   # fine-tune: start from this checkpoint ("default" = shipped) with a fresh
                                     # optimizer and schedule; its architecture, tokenizers and stats are kept


@dataclass
class PolicyConfig:
    name: str = "cpu"
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def validate(self) -> "PolicyConfig":
        act = self.model.action
        if self.model.aux_source not in ("bridge", "lm"):
            raise VLAError(f"model.aux_source must be 'bridge' or 'lm' (got {self.model.aux_source!r}).")
        dims = self.model.state_dims
        if dims is not None and (not dims or any(not 0 <= d < self.model.state_dim for d in dims)):
            raise VLAError(f"model.state_dims must be indices in 0..{self.model.state_dim - 1} (got {dims}).")
        if self.model.ground_goal not in GROUND_GOALS:
            raise VLAError(f"model.ground_goal must be one of {', '.join(map(repr, GROUND_GOALS))} "
                           f"(got {self.model.ground_goal!r}).")
        if self.model.ground_goal and not self.model.grounding:
            raise VLAError("model.ground_goal needs model.grounding=true.")
        if self.model.ground_goal == "pixel" and self.data.shift:
            raise VLAError("model.ground_goal=pixel needs data.shift=0: a shifted image moves the goal's pixel but "
                           "not its place on the table.")
        if self.model.ground_color_maps < 0:
            raise VLAError(f"model.ground_color_maps must be >= 0 (got {self.model.ground_color_maps}).")
        if self.model.ground_color_maps and not (self.model.grounding and self.model.ground_colors):
            raise VLAError("model.ground_color_maps needs model.grounding=true and model.ground_colors=true.")
        if self.model.ground_pixel_depth < 0 or (self.model.ground_pixel_depth and self.model.ground_goal != "pixel"):
            raise VLAError(f"model.ground_pixel_depth must be >= 0 and needs model.ground_goal=pixel "
                           f"(got {self.model.ground_pixel_depth}, ground_goal={self.model.ground_goal!r}).")
        if self.model.goal_pointer and not self.model.ground_goal:
            raise VLAError("model.goal_pointer needs model.ground_goal: its goal replaces the grounding head's.")
        if self.model.ground_peak < 0:
            raise VLAError(f"model.ground_peak must be >= 0 (got {self.model.ground_peak}).")
        if self.model.ground_relations and not self.model.ground_color_maps:
            raise VLAError("model.ground_relations needs model.ground_color_maps > 0: it reads the colour-match maps.")
        if self.data.reset_scenes < 0 or not 0 <= self.data.reset_share < 1 or not 0 <= self.data.reset_arm <= 1:
            raise VLAError(f"data.reset_scenes must be >= 0, data.reset_share in [0, 1) and data.reset_arm in "
                           f"[0, 1] (got {self.data.reset_scenes}, {self.data.reset_share}, {self.data.reset_arm}).")
        if self.data.reset_scenes and not (self.model.grounding or self.model.aux_waypoint > 0):
            raise VLAError("data.reset_scenes trains the grounding and waypoint heads only; it needs model.grounding "
                           "or model.aux_waypoint.")
        if not 0 <= self.data.color_aug <= 1:
            raise VLAError(f"data.color_aug must be in [0, 1] (got {self.data.color_aug}).")
        if self.data.color_aug and not self.model.ground_colors:
            raise VLAError("data.color_aug needs model.ground_colors=true: colour words must take the same transform.")
        if not 0 <= self.model.ground_teacher <= 1:
            raise VLAError(f"model.ground_teacher must be in [0, 1] (got {self.model.ground_teacher}).")
        if not act.label_sigma >= 0:
            raise VLAError(f"model.action.label_sigma must be >= 0 (got {act.label_sigma}).")
        if act.decoding not in DECODING:
            raise VLAError(f"unknown decoding {act.decoding!r}; " + did_you_mean(act.decoding, DECODING))
        if not 1 <= act.execute <= act.horizon:
            raise VLAError(f"model.action.execute must be between 1 and horizon={act.horizon} (got {act.execute}).")
        if act.replan not in REPLAN:
            raise VLAError(f"unknown model.action.replan {act.replan!r}; " + did_you_mean(act.replan, REPLAN))
        if act.commands not in COMMANDS:
            raise VLAError(f"unknown model.action.commands {act.commands!r}; " + did_you_mean(act.commands, COMMANDS))
        if not act.pause_dims or any(not 0 <= d < act.dim for d in act.pause_dims) or not act.pause_tol >= 0:
            raise VLAError(f"model.action.pause_dims must name action dimensions below {act.dim} and pause_tol must "
                           f"be >= 0 (got {list(act.pause_dims)}, {act.pause_tol}).")
        if self.train.batch_size < 1 or self.train.grad_accum < 1:
            raise VLAError("train.batch_size and train.grad_accum must be at least 1.")
        return self


def presets() -> list[str]:
    return sorted(p.stem for p in PRESET_DIR.glob("*.yaml"))


def load_config(preset: str, overrides: list[str] = ()) -> PolicyConfig:
    """A preset name (configs/policy/<name>.yaml) or a YAML path, with dotted `key=value` overrides."""
    path = Path(preset)
    if not (path.suffix in (".yaml", ".yml") or path.is_file()):
        if preset not in presets():
            raise VLAError(f"unknown policy preset {preset!r}; " + did_you_mean(preset, presets()))
        path = PRESET_DIR / f"{preset}.yaml"
    data = load_yaml(path)
    data.setdefault("name", path.stem)
    data = apply_overrides(data, list(overrides), PolicyConfig)
    return from_dict(PolicyConfig, data).validate()
