"""Typed parameters of the ROS 2 nodes: dataclass defaults, ROS 2 YAML files and `-p name:=value` overrides.

A parameters file is the standard ROS 2 layout (`<node name>: {ros__parameters: {...}}`, `/**` for all
nodes), so the same file works with `ros2 run/launch --params-file` and `vla ros ... --params`. Values are
checked here once, with one clear sentence per mistake, whichever way they arrived.
"""
from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from pathlib import Path

from vla import VLAError, did_you_mean

OUTPUT_MODES = ("twist", "joint", "raw")
STATE_NAMES = ["ee_x", "ee_y", "ee_z", "ee_yaw", "gripper_opening"] + [f"panda_joint{i}" for i in range(1, 8)]


@dataclass
class PolicyParams:
    """`vla_policy`: camera + instruction in, safe actions out."""

    policy: str = "default"  # "default", a shipped name or a checkpoint directory
    device: str = "cpu"
    vlm_weights: str = "default"  # caption / vqa tools ("default" = shipped)
    clip_weights: str = "default"  # classify / locate tools
    control_rate_hz: float = 10.0
    image_topic: str = "/camera/image_raw"
    instruction_topic: str = "/vla/instruction"
    joint_states_topic: str = ""  # "" = do not subscribe; state entries named in `state_names` are read
    task_status_topic: str = ""  # JSON {"success": bool} from the robot/sim ends a command as done
    action_topic: str = "/vla/action"
    gripper_topic: str = "/vla/gripper"  # std_msgs/Float64, used by output_mode twist
    status_topic: str = "/vla/status"
    answer_topic: str = "/vla/answer"
    perception_request_topic: str = "/vla/perception/request"
    perception_response_topic: str = "/vla/perception/response"
    arm_service: str = "/vla/arm"
    estop_service: str = "/vla/estop"
    reset_service: str = "/vla/reset"
    caption_service: str = "/vla/caption"
    output_mode: str = "raw"
    joint_names: list[str] = field(default_factory=list)
    state_names: list[str] = field(default_factory=lambda: list(STATE_NAMES))
    frame_id: str = "base_link"
    image_size: list[int] = field(default_factory=list)  # [W, H] the policy sees; [] = as received
    action_low: list[float] = field(default_factory=lambda: [-0.05, -0.05, -0.05, -0.3, 0.0])
    action_high: list[float] = field(default_factory=lambda: [0.05, 0.05, 0.05, 0.3, 1.0])
    max_action_delta: list[float] = field(default_factory=lambda: [0.05, 0.05, 0.05, 0.3, 1.0])
    max_linear_velocity: float = 0.5
    max_angular_velocity: float = 3.0
    stale_image_timeout_sec: float = 0.5
    inference_timeout_sec: float = 1.0
    task_timeout_sec: float = 60.0
    halt_repeats: int = 3
    instruction: str = ""  # a command to start with
    dry_run: bool = True
    start_armed: bool = False

    def check(self) -> None:
        if self.output_mode not in OUTPUT_MODES:
            raise VLAError(f"output_mode {self.output_mode!r} is not known; "
                           + did_you_mean(self.output_mode, OUTPUT_MODES))
        if self.output_mode == "joint" and not self.joint_names:
            raise VLAError("output_mode 'joint' needs joint_names (one name per joint the policy commands).")
        _positive(self, "control_rate_hz", "stale_image_timeout_sec", "inference_timeout_sec", "task_timeout_sec")
        if not len(self.action_low) == len(self.action_high) == len(self.max_action_delta):
            raise VLAError("action_low, action_high and max_action_delta must have the same length.")
        if any(lo > hi for lo, hi in zip(self.action_low, self.action_high)):
            raise VLAError("every action_low entry must be <= its action_high entry.")
        if self.image_size and (len(self.image_size) != 2 or min(self.image_size) <= 0):
            raise VLAError(f"image_size must be [] or [width, height] with positive values, got {self.image_size}.")


@dataclass
class SimParams:
    """`vla_sim_robot`: a task-suite scene run as if it were a robot."""

    task: str = "pick"
    split: str = "seen"
    seed: int = 0
    image_size: list[int] = field(default_factory=lambda: [128, 128])  # [W, H]
    camera_rate_hz: float = 10.0
    control_rate_hz: float = 10.0
    sync: bool = True  # step once per received action (lockstep with the policy) instead of on a timer
    max_steps: int = 0  # 0 = the task's default episode length
    image_topic: str = "/camera/image_raw"
    joint_states_topic: str = "/joint_states"
    action_topic: str = "/vla/action"
    gripper_topic: str = "/vla/gripper"
    instruction_topic: str = "/vla/instruction"
    status_topic: str = "/vla/task_status"
    input_mode: str = "raw"  # raw (Float64MultiArray, 5 values) or twist (TwistStamped + gripper topic)
    frame_id: str = "camera"
    encoding: str = "rgb8"

    def check(self) -> None:
        if self.input_mode not in ("raw", "twist"):
            raise VLAError(f"input_mode {self.input_mode!r} is not known; "
                           + did_you_mean(self.input_mode, ("raw", "twist")))
        _positive(self, "camera_rate_hz", "control_rate_hz")
        if len(self.image_size) != 2 or min(self.image_size) <= 0:
            raise VLAError(f"image_size must be [width, height] with positive values, got {self.image_size}.")
        if self.encoding not in ("rgb8", "bgr8", "mono8"):
            raise VLAError(f"encoding {self.encoding!r} is not known; allowed: rgb8, bgr8, mono8.")


NODE_PARAMS: dict[str, type] = {"vla_policy": PolicyParams, "vla_sim_robot": SimParams}


def _positive(params, *names: str) -> None:
    for name in names:
        if not getattr(params, name) > 0:
            raise VLAError(f"{name} must be > 0, got {getattr(params, name)}.")


def _coerce(cls: type, name: str, value):
    """Check one value against the dataclass field type (ints widen to floats, as ROS 2 YAML needs)."""
    hint = typing.get_type_hints(cls)[name]
    origin = typing.get_origin(hint)
    if origin is list:
        (item,) = typing.get_args(hint)
        if not isinstance(value, (list, tuple)):
            raise VLAError(f"parameter {name!r} must be a list of {item.__name__}, got {value!r}.")
        return [_scalar(name, item, v) for v in value]
    return _scalar(name, hint, value)


def _scalar(name: str, kind: type, value):
    if kind is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if kind is str and value is None:
        return ""
    if type(value) is not kind:
        raise VLAError(f"parameter {name!r} must be {kind.__name__}, got {value!r} ({type(value).__name__}).")
    return value


def build(cls: type, values: dict, where: str = "") -> typing.Any:
    """A checked `cls` from a name -> value mapping; unknown names are an error naming the allowed ones."""
    names = field_names(cls)
    kwargs = {}
    for name, value in values.items():
        if name not in names:
            raise VLAError(f"unknown parameter {name!r}{where}; " + did_you_mean(name, names))
        kwargs[name] = _coerce(cls, name, value)
    params = cls(**kwargs)
    params.check()
    return params


def read_file(path: str | Path, node: str) -> dict:
    """The `ros__parameters` of `node` (merged over `/**`) from a ROS 2 parameters YAML file."""
    from vla.models.config import load_yaml

    path = Path(path)
    data = load_yaml(path, what="parameters file")
    merged: dict = {}
    for key in ("/**", node, "/" + node):
        section = data.get(key) or {}
        if not isinstance(section, dict) or not isinstance(section.get("ros__parameters", {}), dict):
            raise VLAError(f"section {key!r} of {str(path)!r} must hold a ros__parameters mapping.")
        merged.update(section.get("ros__parameters") or {})
    return merged


def parse_override(text: str) -> tuple[str, object]:
    """`name:=value` -> (name, value), the value read as YAML like `ros2 run ... -p` does."""
    import yaml

    name, sep, raw = text.partition(":=")
    if not sep or not name:
        raise VLAError(f"parameter override {text!r} must look like name:=value (e.g. dry_run:=false).")
    try:
        return name.strip(), yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        return name.strip(), raw


def resolve(kind: str, params_file: str | Path | None = None, overrides: list[str] = (),
            node: str | None = None) -> typing.Any:
    """Defaults <- parameters file <- `-p` overrides, checked, for a node of `kind` (a `NODE_PARAMS` key)
    whose name (its section in the file) is `node` (default: `kind`)."""
    cls, node = NODE_PARAMS[kind], node or kind
    values = read_file(params_file, node) if params_file else {}
    values.update(parse_override(o) for o in overrides)
    where = f" for {node}" + (f" in {str(params_file)!r}" if params_file else "")
    return build(cls, values, where)


def field_names(cls: type) -> list[str]:
    return [f.name for f in dataclasses.fields(cls)]


def as_dict(params) -> dict:
    return dataclasses.asdict(params)
