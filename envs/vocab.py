"""The task suite's vocabulary as plain data: colours, shapes, sizes, sides and spatial words.

Other packages (the agent's planner, perception prompts) import these lists instead of repeating them.
"Left" and "right" are as seen from the front camera, which faces the robot: left is -y, right is +y.
"""
from __future__ import annotations

#: colour name -> RGBA used in the simulator.
COLORS: dict[str, tuple[float, float, float, float]] = {
    "red": (0.85, 0.12, 0.10, 1.0),
    "green": (0.15, 0.65, 0.20, 1.0),
    "blue": (0.12, 0.30, 0.85, 1.0),
    "yellow": (0.95, 0.85, 0.10, 1.0),
    "orange": (0.98, 0.50, 0.05, 1.0),
    "purple": (0.50, 0.18, 0.65, 1.0),
    "pink": (0.98, 0.55, 0.75, 1.0),
    "cyan": (0.10, 0.80, 0.85, 1.0),
    "brown": (0.45, 0.26, 0.10, 1.0),
    "gray": (0.50, 0.50, 0.50, 1.0),
    "white": (0.97, 0.97, 0.97, 1.0),
    "black": (0.08, 0.08, 0.08, 1.0),
}
COLOR_NAMES: list[str] = list(COLORS)

#: shapes an object can have; "bowl" is the receptacle.
SHAPES: list[str] = ["block", "cylinder", "bowl"]
#: shapes that can be picked up.
GRASPABLE: list[str] = ["block", "cylinder"]
#: sizes for blocks (cylinders and bowls have one size, annotated as None).
SIZES: list[str] = ["small", "large"]
#: block edge length in metres per size.
BLOCK_EDGE: dict[str, float] = {"small": 0.04, "large": 0.05}
CYLINDER_RADIUS, CYLINDER_HEIGHT = 0.02, 0.05
BOWL_RADIUS, BOWL_HEIGHT, BOWL_WALL = 0.075, 0.035, 0.008


def footprint(shape: str, size: str | None) -> float:
    """Radius in metres of the circle an object of `shape` (and block `size`) covers on the table."""
    if shape == "bowl":
        return BOWL_RADIUS
    return CYLINDER_RADIUS if shape == "cylinder" else BLOCK_EDGE[size] * 0.7072


def height(shape: str, size: str | None) -> float:
    if shape == "bowl":
        return BOWL_HEIGHT
    return CYLINDER_HEIGHT if shape == "cylinder" else BLOCK_EDGE[size]

#: table sides a push can target; the value is the (axis, sign) the object must cross.
SIDES: dict[str, tuple[int, int]] = {"left": (1, -1), "right": (1, 1)}
#: spatial relations used in referring expressions ("the block left of the bowl").
RELATIONS: list[str] = ["left of", "right of"]

TABLE_COLOR = (0.80, 0.70, 0.55, 1.0)
