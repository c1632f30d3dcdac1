"""`vla dataset rerender`: replay a collected dataset from its seeds and actions at another image size."""
from __future__ import annotations

import argparse
import json


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", help="a dataset written by `vla collect`")
    parser.add_argument("--out", required=True, help="new (empty or absent) dataset directory")
    parser.add_argument("--image-size", type=int, required=True, help="new square camera image side in pixels")
    parser.add_argument("--episodes-per-file", type=int, default=100, help="episodes per data/video file")
    parser.add_argument("--json", action="store_true", help="print the result as one JSON object")


def run(args: argparse.Namespace) -> int:
    from vla import VLAError
    from vla.agent.data.meta import DatasetMeta
    from vla.agent.data.tools import rerender_dataset
    from vla.agent.train.progress import progress_bar

    if args.image_size < 16:
        raise VLAError(f"--image-size must be at least 16 pixels (got {args.image_size}).")
    total = DatasetMeta(args.source).total_episodes
    with progress_bar(not args.json) as bar:
        job = bar.add_task("re-rendering", total=total)
        meta = rerender_dataset(args.source, args.out, args.image_size, args.episodes_per_file,
                                lambda done: bar.update(job, completed=done))
    result = {"out": str(meta.root), "episodes": meta.total_episodes, "frames": meta.total_frames,
              "image_size": args.image_size}
    print(json.dumps(result) if args.json else
          f"{meta.root}: {meta.total_episodes} episodes, {meta.total_frames} frames at {args.image_size}px")
    return 0
