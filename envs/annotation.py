"""Scene annotations from simulator ground truth (JSON-serialisable), as docs/INTERFACES.md specifies."""
from __future__ import annotations

from vla.envs.world import World


def _round(values) -> list[float]:
    return [round(float(v), 4) for v in values]


def scene_annotation(world: World) -> dict:
    """Objects with colour, shape, size, position and containment/support relations; the gripper's state."""
    bowls = world.ids("bowl")
    movable = [oid for oid in world.ids() if oid not in bowls]
    objects = []
    for oid in world.ids():
        spec = world.spec(oid)
        inside = next((b for b in bowls if oid in movable and world.in_bowl(oid, b)), None)
        on = next((o for o in movable if o != oid and oid in movable and world.on(oid, o)), None)
        objects.append({"id": oid, "color": spec.color, "shape": spec.shape, "size": spec.size,
                        "position": _round(world.position(oid)), "in": inside, "on": on})
    robot = world.robot
    return {"objects": objects, "gripper": {"position": _round(robot.ee_pose()[0]),
                                            "opening": round(robot.opening(), 4), "holding": world.holding()}}
