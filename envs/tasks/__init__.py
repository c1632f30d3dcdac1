"""Task registry: name -> Task class. Each task lives in its own module."""
from __future__ import annotations

from vla.envs.tasks.base import Task
from vla.envs.tasks.chain import Chain
from vla.envs.tasks.pick import Pick
from vla.envs.tasks.place import Place
from vla.envs.tasks.push import Push
from vla.envs.tasks.put_all import PutAll
from vla.envs.tasks.reach import Reach
from vla.envs.tasks.stack import Stack

TASKS: dict[str, type[Task]] = {
    "reach": Reach, "pick": Pick, "place": Place, "stack": Stack, "push": Push, "put_all": PutAll, "chain": Chain,
}
