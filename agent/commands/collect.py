"""`vla collect`: roll out the oracles and write a LeRobot v3.0 dataset (resumable; run it again to continue).

`--policy CKPT` collects on-policy episodes instead (DAgger): the checkpoint drives, the expert's action for every
state it reaches is recorded, and failed episodes are kept."""
from __future__ import annotations

import argparse
import json
import signal
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--task", required=True, help="a task name, a comma-separated list, or 'all'")
    parser.add_argument("--split", default="seen", help="scene/phrasing split (default: seen)")
    parser.add_argument("--episodes", type=int, required=True, help="episodes the dataset should hold (total)")
    parser.add_argument("--out", required=True, help="dataset directory (created, or resumed if it is one)")
    parser.add_argument("--workers", type=int, default=1, help="worker processes (default: 1)")
    parser.add_argument("--image-size", type=int, default=128, help="square camera image side in pixels")
    parser.add_argument("--wrist", action="store_true", help="also record the wrist camera")
    parser.add_argument("--seed", type=int, default=0, help="base seed; episode seeds derive from it")
    parser.add_argument("--episodes-per-file", type=int, default=100, help="episodes per data/video file")
    parser.add_argument("--noise", type=float, default=0.0,
                        help="DART perturbation: std in metres of Gaussian noise added to the executed dx/dy/dz "
                             "(the oracle's clean action is recorded; default 0)")
    parser.add_argument("--policy", default=None,
                        help="on-policy episodes (DAgger): this checkpoint (or 'default') drives and the expert's "
                             "action for each state is recorded; failed episodes are kept")
    parser.add_argument("--expert-share", type=float, default=0.0,
                        help="with --policy: share of steps the expert drives instead (default 0)")
    parser.add_argument("--json", action="store_true", help="print the report as one JSON object")


def resolve_tasks(spec: str) -> tuple[str, ...]:
    from vla import VLAError, did_you_mean
    from vla.envs import TASKS

    names = list(TASKS) if spec == "all" else [t.strip() for t in spec.split(",") if t.strip()]
    for name in names:
        if name not in TASKS:
            raise VLAError(f"unknown task {name!r}; " + did_you_mean(name, [*TASKS, "all"]))
    if not names:
        raise VLAError("--task is empty; give a task name or 'all'.")
    return tuple(names)


def _checked_policy(path: str) -> str:
    """The checkpoint as given, after checking it loads (a bad path fails here, not in every worker)."""
    from vla.models.policy.policy import load_policy

    load_policy(path)
    return path


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def run(args: argparse.Namespace) -> int:
    from vla import VLAError
    from vla.agent.data.collect import CollectConfig, collect_episodes
    from vla.agent.train.progress import progress_bar
    from vla.envs import SPLITS

    if args.split not in SPLITS:
        from vla import did_you_mean

        raise VLAError(f"unknown split {args.split!r}; " + did_you_mean(args.split, SPLITS))
    if args.image_size < 16:
        raise VLAError(f"--image-size must be at least 16 pixels (got {args.image_size}).")
    if not (0 <= args.noise <= 0.05):
        raise VLAError(f"--noise must be between 0 and 0.05 metres (got {args.noise}).")
    if not (0 <= args.expert_share <= 1):
        raise VLAError(f"--expert-share must be between 0 and 1 (got {args.expert_share}).")
    if args.policy is None and args.expert_share:
        raise VLAError("--expert-share needs --policy (it is the share of on-policy steps the expert drives).")
    if args.policy is not None and args.noise:
        raise VLAError("--noise perturbs the oracle's own demonstrations; it does not combine with --policy.")
    policy = _checked_policy(args.policy) if args.policy is not None else None
    signal.signal(signal.SIGTERM, _interrupt)  # `kill` stops the workers too; the next run resumes
    cfg = CollectConfig(resolve_tasks(args.task), args.split, args.episodes, (args.image_size, args.image_size),
                        args.wrist, args.seed, args.workers, args.episodes_per_file, args.noise, policy,
                        args.expert_share)
    with progress_bar(sys.stderr.isatty() or not args.json) as bar:
        job = bar.add_task("collecting", total=args.episodes)
        started = {}

        def on_progress(done: int, kept: int, discarded: int, successes: int) -> None:
            import time

            started.setdefault("t", time.perf_counter())
            minutes = max(time.perf_counter() - started["t"], 1e-6) / 60
            tries = kept + discarded  # the oracle's attempts, or the policy's episodes
            rate = (successes / tries) if tries else 1.0
            who = "policy" if policy is not None else "oracle"
            bar.update(job, completed=done, info=f"{who} success {rate:.0%}  {kept / minutes:.0f} episodes/min")

        report = collect_episodes(args.out, cfg, on_progress)
    result = {"out": report.out, "episodes": report.episodes, "frames": report.frames,
              "new_episodes": report.new_episodes, "discarded": report.discarded, "successes": report.successes,
              "discarded_total": report.discarded_total, "seconds": round(report.seconds, 2),
              "episodes_per_min": round(report.episodes_per_min, 1)}
    if args.json:
        print(json.dumps(result))
    else:
        print(f"{report.out}: {report.episodes} episodes, {report.frames} frames; this run kept "
              f"{report.new_episodes} and discarded {report.discarded} failed oracle episodes in "
              f"{report.seconds:.1f}s ({report.episodes_per_min:.1f} episodes/min).")
        if policy is not None:
            print(f"the policy reached the goal in {report.successes} of the {report.new_episodes} on-policy "
                  "episodes of this run.")
    return 0
