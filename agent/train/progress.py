"""A rich progress bar on stderr (disabled when not wanted, e.g. in tests or on non-zero DDP ranks)."""
from __future__ import annotations

from contextlib import contextmanager


@contextmanager
def progress_bar(enabled: bool = True):
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, \
        TimeRemainingColumn

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TimeRemainingColumn(), TextColumn("{task.fields[info]}"))
    with Progress(*columns, console=Console(stderr=True), disable=not enabled, transient=False) as bar:
        original = bar.add_task

        def add_task(description, **kwargs):
            kwargs.setdefault("info", "")
            return original(description, **kwargs)

        bar.add_task = add_task
        yield bar
