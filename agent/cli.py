"""The `vla` command line: a thin router from subcommand names to the modules that implement them.

Each command lives in its own module exposing `add_arguments(parser)` and `run(args) -> int`.
Modules are imported only when their command is used, so `vla --help` and `vla tasks` stay fast
and never import torch. Commands with children (`vla bench sim`, `vla train policy`) are keyed by
both words; `vla eval` without a known child runs policy evaluation.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from vla import VLAError, __version__, did_you_mean

# "name" or "group child" -> ("module", "one-line help")
COMMANDS: dict[str, tuple[str, str]] = {
    "tasks": ("vla.agent.commands.tasks", "list tasks, splits, colours and phrasing templates"),
    "sim": ("vla.agent.commands.sim", "run simulated episodes with the oracle, a random or a trained policy"),
    "bench sim": ("vla.agent.commands.bench_sim", "measure simulation and rendering speed"),
}

# Groups whose first argument picks a child; a group listed here runs that child when none is named.
DEFAULT_CHILD: dict[str, str] = {"eval": "policy"}


def _groups() -> set[str]:
    return {key.split()[0] for key in COMMANDS if " " in key}


def _usage() -> str:
    lines = [f"vla {__version__}: vision-language-action toolkit", "", "usage: vla COMMAND [options]", "", "commands:"]
    width = max(len(k) for k in COMMANDS)
    for key, (_, help_) in sorted(COMMANDS.items()):
        lines.append(f"  {key.ljust(width)}  {help_}")
    lines.append("")
    lines.append("Run `vla COMMAND --help` for a command's options.")
    return "\n".join(lines)


def _resolve(argv: list[str]) -> tuple[str, list[str]]:
    """Split argv into (command key, remaining args)."""
    if not argv:
        raise VLAError("no command given; " + did_you_mean("", sorted(COMMANDS)))
    head, rest = argv[0], argv[1:]
    if head in _groups():
        if rest and f"{head} {rest[0]}" in COMMANDS:
            return f"{head} {rest[0]}", rest[1:]
        if head in DEFAULT_CHILD and f"{head} {DEFAULT_CHILD[head]}" in COMMANDS:
            return f"{head} {DEFAULT_CHILD[head]}", rest
        children = sorted(k.split()[1] for k in COMMANDS if k.startswith(head + " "))
        given = rest[0] if rest else ""
        raise VLAError(f"`vla {head}` needs one of: {', '.join(children)} (got {given!r}).")
    if head in COMMANDS:
        return head, rest
    raise VLAError(f"unknown command {head!r}; " + did_you_mean(head, sorted(COMMANDS)))


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(_usage())
        return 0
    if argv[0] == "--version":
        print(__version__)
        return 0
    try:
        key, rest = _resolve(argv)
        module_name, help_ = COMMANDS[key]
        module = importlib.import_module(module_name)
        parser = argparse.ArgumentParser(prog=f"vla {key}", description=help_)
        module.add_arguments(parser)
        args = parser.parse_args(rest)
        return int(module.run(args) or 0)
    except VLAError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
