"""The perception-tool contract: a name, a one-line description, JSON schemas in and out, and `__call__`.

Everything that uses a perception tool (the agent, the ROS 2 node, the `vla tools` CLI) goes through this
class. Inputs are checked against `input_schema` before the model runs, so bad input becomes one clear
`VLAError` sentence instead of a traceback from deep inside a network. Images travel in-process as uint8
(H, W, 3) RGB numpy arrays; the schema marks them with `"format": "image"`.

Models are loaded lazily on the first call, so listing tools and reading their schemas costs no torch import.
"""
from __future__ import annotations

from typing import Any, ClassVar

from vla import VLAError

_JSON_TYPES = {"string": str, "integer": int, "number": (int, float), "boolean": bool, "array": (list, tuple),
               "object": dict}

IMAGE_SCHEMA = {"type": "array", "format": "image", "description": "uint8 (H, W, 3) RGB image"}


def check_image(image: Any, what: str = "image"):
    """Return `image` as a contiguous uint8 (H, W, 3) array, or raise VLAError saying what it was instead."""
    import numpy as np

    if not isinstance(image, np.ndarray):
        raise VLAError(f"{what} must be a uint8 (H, W, 3) RGB numpy array, got {type(image).__name__}.")
    if image.ndim != 3 or image.shape[2] != 3 or image.shape[0] < 8 or image.shape[1] < 8:
        raise VLAError(f"{what} must have shape (H, W, 3) with H, W >= 8, got {tuple(image.shape)}.")
    if image.dtype != np.uint8:
        raise VLAError(f"{what} must have dtype uint8, got {image.dtype}.")
    return np.ascontiguousarray(image)


def _check_value(value: Any, schema: dict, where: str) -> None:
    kind = schema.get("type")
    if schema.get("format") == "image":
        check_image(value, where)
        return
    if kind is not None:
        ok = isinstance(value, _JSON_TYPES[kind]) and not (kind in ("integer", "number") and isinstance(value, bool))
        if not ok:
            raise VLAError(f"{where} must be of type {kind}, got {type(value).__name__}.")
    if kind == "string":
        if len(value.strip()) < schema.get("minLength", 0):
            raise VLAError(f"{where} must not be empty.")
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            raise VLAError(f"{where} is {len(value)} characters long; at most {schema['maxLength']} are allowed.")
    if kind == "array" and "items" in schema:
        if len(value) < schema.get("minItems", 0):
            raise VLAError(f"{where} needs at least {schema['minItems']} item(s), got {len(value)}.")
        for i, item in enumerate(value):
            _check_value(item, schema["items"], f"{where}[{i}]")
    if kind in ("integer", "number"):
        if "minimum" in schema and value < schema["minimum"]:
            raise VLAError(f"{where} must be >= {schema['minimum']}, got {value}.")
        if "maximum" in schema and value > schema["maximum"]:
            raise VLAError(f"{where} must be <= {schema['maximum']}, got {value}.")
    if "enum" in schema and value not in schema["enum"]:
        from vla import did_you_mean

        raise VLAError(f"{where} has value {value!r}; " + did_you_mean(value, schema["enum"]))


def validate(inputs: dict, schema: dict, tool: str) -> dict:
    """Check `inputs` against an object schema (types, required, enum, lengths, image arrays); fill defaults."""
    props = schema.get("properties", {})
    unknown = sorted(set(inputs) - set(props))
    if unknown:
        raise VLAError(f"tool {tool!r} got unknown input(s) {', '.join(unknown)}; allowed: {', '.join(props)}.")
    missing = [k for k in schema.get("required", []) if k not in inputs]
    if missing:
        raise VLAError(f"tool {tool!r} is missing required input(s): {', '.join(missing)}.")
    out = {}
    for key, sub in props.items():
        if key in inputs:
            _check_value(inputs[key], sub, f"{tool} input {key!r}")
            out[key] = inputs[key]
        elif "default" in sub:
            out[key] = sub["default"]
    return out


class Tool:
    """Base class of every perception tool.

    Subclasses set the class attributes and implement `run(**inputs) -> dict`; callers use
    `tool(**inputs)`, which validates the inputs first. `weights` is "default" (the shipped weights under
    models/weights/<tool>/) or a local path; `device` is a torch device string.
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    input_schema: ClassVar[dict] = {"type": "object", "properties": {}}
    output_schema: ClassVar[dict] = {"type": "object", "properties": {}}

    def __init__(self, weights: str = "default", device: str = "cpu", **options: Any):
        self.weights = weights
        self.device = device
        self.options = options
        self._model = None

    @property
    def model(self):
        """The underlying model, loaded on first use."""
        if self._model is None:
            self._model = self.load()
        return self._model

    def load(self):  # pragma: no cover - every subclass overrides it
        raise NotImplementedError

    def run(self, **inputs: Any) -> dict:  # pragma: no cover - every subclass overrides it
        raise NotImplementedError

    def __call__(self, **inputs: Any) -> dict:
        return self.run(**validate(inputs, self.input_schema, self.name))

    @classmethod
    def spec(cls) -> dict:
        """The tool's description as one JSON-serialisable dict (what an agent's planner is shown)."""
        return {"name": cls.name, "description": cls.description, "input_schema": cls.input_schema,
                "output_schema": cls.output_schema}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, weights={self.weights!r}, device={self.device!r})"
