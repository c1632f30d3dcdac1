"""Demonstrations as LeRobot v3.0 datasets: the on-disk format, its writer and reader, statistics,
oracle collection across worker processes, and dataset tools (merge, re-render, info).

Heavy imports (torch, pybullet) stay inside the modules that need them; `from vla.agent.data import ...`
names are resolved lazily so that importing the package is cheap.
"""
from __future__ import annotations

import importlib

_EXPORTS = {
    "LeRobotDataset": "vla.agent.data.dataset",
    "DatasetMeta": "vla.agent.data.meta",
    "DatasetWriter": "vla.agent.data.writer",
    "Episode": "vla.agent.data.episode",
    "collect_episodes": "vla.agent.data.collect",
    "merge_datasets": "vla.agent.data.tools",
    "rerender_dataset": "vla.agent.data.tools",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'vla.agent.data' has no attribute {name!r}")
