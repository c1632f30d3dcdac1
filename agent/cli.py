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
    "collect": ("vla.agent.commands.collect", "roll out the oracles into a LeRobot v3.0 dataset (resumable, parallel)"),
    "bench collect": ("vla.agent.commands.bench_collect", "measure collection episodes/min, bytes/frame and loader frames/s"),
    "dataset info": ("vla.agent.commands.dataset_info", "summarise a LeRobot v3.0 dataset and check its files"),
    "dataset merge": ("vla.agent.commands.dataset_merge", "merge LeRobot v3.0 datasets into a new one"),
    "dataset rerender": ("vla.agent.commands.dataset_rerender", "re-render a collected dataset at another image size from its seeds"),
    "tasks": ("vla.agent.commands.tasks", "list tasks, splits, colours and phrasing templates"),
    "sim": ("vla.agent.commands.sim", "run simulated episodes with the oracle, a random or a trained policy"),
    "bench sim": ("vla.agent.commands.bench_sim", "measure simulation and rendering speed"),
    "train policy": ("vla.agent.commands.train_policy", "train the VLA policy from a preset (configs/policy/)"),
    "eval policy": ("vla.agent.commands.eval_policy", "closed-loop success rates of a policy per task and split"),
    "bench policy": ("vla.agent.commands.bench_policy", "policy latency per action/chunk and batch-32 throughput"),
    "bench tools": ("vla.agent.commands.bench_tools", "perception-tool ms per call and diffusion images/s"),
    "ros": ("vla.agent.commands.ros", "ROS 2: start the policy / sim robot nodes or a graph, record and convert bags"),
    "bench ros": ("vla.agent.commands.bench_ros", "measure ROS 2 image-to-action latency, a soak, and closed-loop success"),
    "tools": ("vla.agent.commands.tools", "perception tools: list, classify, locate, caption, vqa, generate"),
    "train clip": ("vla.agent.commands.train_clip", "train the CLIP tool (contrastive, open_clip) on rendered scenes"),
    "train vlm": ("vla.agent.commands.train_vlm", "train the BLIP-2-style captioning/VQA tool on rendered scenes"),
    "train diffusion": ("vla.agent.commands.train_diffusion", "train the text-to-image diffusion tool on rendered scenes"),
    "train goal": ("vla.agent.commands.train_goal", "train the policy's goal pointer; attach it to a policy"),
    "eval offline": ("vla.agent.commands.eval_offline", "held-out loss, token accuracy and vision reliance of a policy"),
    "eval tools": ("vla.agent.commands.eval_tools", "measure the perception tools on held-out scenes"),
    "run": ("vla.agent.commands.run", "the natural-language agent: run a command, or talk to the robot"),
    "eval agent": ("vla.agent.commands.eval_agent", "measure the agent on single, compound and paraphrased commands"),
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
