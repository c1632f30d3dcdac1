"""`vla bench collect`: oracle collection speed on 1 and 2 workers, bytes per frame, and loader frames/s.

Both collection runs write the same episodes (slots and seeds depend only on the command) into fresh
temporary datasets, timed end to end (process start-up, rollouts, video encoding, commits) and in steady
state (first to last finished episode, so worker start-up is not counted). The loader figure
is a training-like pass: shuffled DataLoader batches with action chunks and video decoded on the fly (each
worker's frame cache starts cold), timed from the first batch so that worker start-up is not counted.
"""
from __future__ import annotations

import argparse
import json
import sys

SINGLE_STEP = "reach,pick,place,stack,push"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--task", default=SINGLE_STEP, help=f"tasks to collect (default: {SINGLE_STEP})")
    parser.add_argument("--episodes", type=int, default=40, help="episodes per collection run (default: 40)")
    parser.add_argument("--image-size", type=int, default=128, help="camera image side (default: 128)")
    parser.add_argument("--loader-workers", type=int, default=2, help="DataLoader worker processes (default: 2)")
    parser.add_argument("--horizon", type=int, default=8, help="action chunk length for the loader (default: 8)")
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON object")


def _dataset_bytes(root) -> int:
    from pathlib import Path

    return sum(p.stat().st_size for p in Path(root).rglob("*") if p.is_file())


def loader_frames_per_s(root, horizon: int, workers: int, epochs: int = 3, batch_size: int = 32) -> float:
    """Steady-state frames/s of shuffled training batches, timed from the first batch (worker start-up excluded)."""
    import time

    from torch.utils.data import DataLoader

    from vla.agent.data.dataset import LeRobotDataset

    ds = LeRobotDataset(root, action_horizon=horizon)
    loader = DataLoader(ds, batch_size=batch_size, shuffle=True, num_workers=workers,
                        persistent_workers=workers > 0, multiprocessing_context="spawn" if workers > 0 else None)
    t0, n = None, 0
    for _ in range(epochs):
        for batch in loader:  # batch["observation.images.front"]: (B, 3, H, W)
            if t0 is None:
                t0 = time.perf_counter()
                continue
            n += len(batch["task"])
    return n / (time.perf_counter() - t0)


def run(args: argparse.Namespace) -> int:
    import tempfile
    import time

    from vla import VLAError
    from vla.agent.commands.collect import resolve_tasks
    from vla.agent.data.collect import CollectConfig, collect_episodes
    from vla.agent.train.progress import progress_bar

    if args.episodes < 2:
        raise VLAError(f"--episodes must be at least 2 (got {args.episodes}).")
    tasks = resolve_tasks(args.task)
    size = (args.image_size, args.image_size)
    rates, steady, bytes_per_frame, loader_fps = {}, {}, 0.0, 0.0
    with tempfile.TemporaryDirectory(prefix="vla-bench-collect-") as tmp, progress_bar(True) as bar:
        for workers in (1, 2):
            job = bar.add_task(f"collect, {workers} worker(s)", total=args.episodes)
            cfg = CollectConfig(tasks, "seen", args.episodes, size, workers=workers, episodes_per_file=50)
            stamps: list[float] = []

            def tick(done, kept, discarded, j=job, stamps=stamps):
                bar.update(j, completed=done)
                if kept:
                    stamps.append(time.perf_counter())

            report = collect_episodes(f"{tmp}/w{workers}", cfg, tick)
            rates[workers] = report.episodes_per_min
            steady[workers] = 60.0 * (len(stamps) - 1) / (stamps[-1] - stamps[0])
            if workers == 1:
                bytes_per_frame = _dataset_bytes(f"{tmp}/w1") / report.frames
                frames = report.frames
        bar.add_task(f"loader pass over {frames} frames", total=None)
        loader_fps = loader_frames_per_s(f"{tmp}/w1", args.horizon, args.loader_workers)
    result = {"episodes_per_min_1w": round(rates[1], 1), "episodes_per_min_2w": round(rates[2], 1),
              "bytes_per_frame": round(bytes_per_frame, 1), "loader_frames_per_s": round(loader_fps, 1),
              "steady_episodes_per_min_1w": round(steady[1], 1), "steady_episodes_per_min_2w": round(steady[2], 1),
              "episodes": args.episodes, "frames": frames, "tasks": list(tasks), "image_size": args.image_size,
              "loader_workers": args.loader_workers}
    print(f"collection ({', '.join(tasks)}, {args.image_size}px, {args.episodes} episodes): "
          f"{rates[1]:.1f} episodes/min on 1 worker, {rates[2]:.1f} on 2 end to end; {steady[1]:.1f} and "
          f"{steady[2]:.1f} once the workers run", file=sys.stderr if args.json else sys.stdout)
    print(f"storage: {bytes_per_frame:.0f} bytes/frame (all files); loader: {loader_fps:.0f} frames/s "
          f"(shuffled, {args.loader_workers} workers, video decoded)", file=sys.stderr if args.json else sys.stdout)
    if args.json:
        print(json.dumps(result))
    return 0
