"""vla: a vision-language-action toolkit for language-conditioned manipulation.

The import package `vla` maps the repository's top-level folders onto one namespace
(`vla.envs` -> envs/, `vla.models` -> models/, `vla.agent` -> agent/), so the layout on
disk is the pipeline while nothing generic like `models` lands in site-packages.
"""
from __future__ import annotations

from pathlib import Path

__version__ = "0.1.0"

#: Repository / installation root that holds configs/ and the shipped weights.
ROOT = Path(__file__).resolve().parent.parent


def project_path(path: str | Path) -> Path:
    """A path a user or a config names: absolute, or relative to the working directory when it exists there, else
    relative to ROOT (configs name shipped files such as models/weights/clip from the repository root)."""
    path = Path(path)
    return path if path.is_absolute() or path.exists() else ROOT / path


class VLAError(Exception):
    """An error meant for people: one clear sentence naming what was wrong and what is allowed.

    The `vla` CLI prints it as `error: <message>` and exits with status 2, never a traceback.
    """


def did_you_mean(value: str, allowed) -> str:
    """A short hint listing the allowed values, with the closest match first when there is one."""
    import difflib

    allowed = list(allowed)
    close = difflib.get_close_matches(str(value), [str(a) for a in allowed], n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    return f"allowed: {', '.join(str(a) for a in allowed)}.{hint}"
