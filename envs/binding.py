"""Bind a parsed instruction to objects already in the scene (a new goal without a reset).

`Binder` offers the part of the `Sampler` interface that tasks use to build goals, but resolves each
referring expression against the current scene instead of adding objects.
"""
from __future__ import annotations

import numpy as np

from vla import VLAError
from vla.envs.tasks.base import Ref
from vla.envs.world import World


class Binder:
    def __init__(self, world: World, rng: np.random.Generator, split, task: str, prefer=()):
        self.world, self.rng, self.split, self.task = world, rng, split, task
        #: object ids to bind first among those the words cannot tell apart (twins alike in colour, shape and size)
        self.prefer = set(prefer)
        self.specs = world.specs
        self.keepout: list = []

    def _describe(self) -> str:
        return ", ".join(f"{s.size + ' ' if s.size else ''}{s.color} {s.shape}" for s in self.specs)

    def _matches(self, ref: Ref) -> list[int]:
        return [oid for oid in self.world.ids() if self.specs[oid - 1].color == ref.color
                and self.specs[oid - 1].shape == ref.shape
                and (ref.size is None or self.specs[oid - 1].size == ref.size)]

    def realize(self, ref: Ref, **_where) -> Ref:
        """Set `ref.oid` to the scene object it denotes; raise VLAError when there is none."""
        found = self._matches(ref)
        if ref.relation and ref.landmark:
            own, self.prefer = self.prefer, self.prefer - set(found)   # an object is never its own landmark
            try:
                self.realize(ref.landmark)
            finally:
                self.prefer = own
            centre = self.world.position(ref.landmark.oid)[1]
            sign = -1 if ref.relation == "left of" else 1
            found = sorted((o for o in found if sign * (self.world.position(o)[1] - centre) > 0),
                           key=lambda o: abs(self.world.position(o)[1] - centre))
        if not found:
            raise VLAError(f"the scene has no {ref.text()[4:]}; it has: {self._describe()}.")
        # a relation names the nearest one on its side; plain words fit every match alike
        ref.oid = found[0] if ref.relation else next((oid for oid in found if oid in self.prefer), found[0])
        return ref

    def all_of(self, color: str, shape: str, count) -> list[int]:
        found = self._matches(Ref(color, shape))
        if not found:
            raise VLAError(f"the scene has no {color} {shape}; it has: {self._describe()}.")
        return found
