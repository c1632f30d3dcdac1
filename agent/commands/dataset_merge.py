"""`vla dataset merge`: concatenate LeRobot v3.0 datasets with the same features into a new one."""
from __future__ import annotations

import argparse
import json


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("sources", nargs="+", help="two or more dataset directories")
    parser.add_argument("--out", required=True, help="new (empty or absent) dataset directory")
    parser.add_argument("--episodes-per-file", type=int, default=100, help="episodes per data/video file")
    parser.add_argument("--json", action="store_true", help="print the result as one JSON object")


def run(args: argparse.Namespace) -> int:
    from vla.agent.data.meta import DatasetMeta
    from vla.agent.data.tools import merge_datasets
    from vla.agent.train.progress import progress_bar

    total = sum(DatasetMeta(s).total_episodes for s in args.sources)
    with progress_bar(not args.json) as bar:
        job = bar.add_task("merging", total=total)
        meta = merge_datasets(args.sources, args.out, args.episodes_per_file,
                              lambda done: bar.update(job, completed=done))
    result = {"out": str(meta.root), "episodes": meta.total_episodes, "frames": meta.total_frames}
    print(json.dumps(result) if args.json else
          f"{meta.root}: {meta.total_episodes} episodes, {meta.total_frames} frames from {len(args.sources)} datasets")
    return 0
