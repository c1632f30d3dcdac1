"""`vla dataset info`: summarise a LeRobot v3.0 dataset after checking every file it references."""
from __future__ import annotations

import argparse
import json


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("root", help="dataset directory")
    parser.add_argument("--json", action="store_true", help="print the summary as one JSON object")


def run(args: argparse.Namespace) -> int:
    from vla.agent.data.tools import describe

    info = describe(args.root)
    if args.json:
        print(json.dumps(info))
        return 0
    print(f"{info['root']}: LeRobot {info['codebase_version']}, {info['episodes']} episodes, {info['frames']} frames "
          f"at {info['fps']} fps, {info['tasks']} task strings, {info['bytes'] / 2**20:.1f} MiB "
          f"({info['bytes_per_frame']:.0f} bytes/frame)")
    for key, ft in info["features"].items():
        print(f"  {key}: {ft['dtype']} {tuple(ft['shape'])}")
    if info["episodes_per_task"]:
        print("  episodes per task: " + ", ".join(f"{k} {v}" for k, v in sorted(info["episodes_per_task"].items())))
    print(f"  discarded oracle attempts behind these episodes: {info['discarded']}")
    return 0
