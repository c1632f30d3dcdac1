"""`vla sim`: run seeded episodes of a task (or a sentence) with the oracle, random actions or a trained policy."""
from __future__ import annotations

import argparse
import json
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--task", default=None, help="task name, or 'all' (default: reach, or the instruction's)")
    parser.add_argument("--split", default="seen", help="split name, or 'all'")
    parser.add_argument("--instruction", default=None, help="build the scene from this sentence")
    parser.add_argument("--policy", default="oracle", help="oracle | random | a policy name or checkpoint folder")
    parser.add_argument("--episodes", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0, help="episode i uses seed K + i")
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--video", default=None, help="write the front camera to this .mp4")
    parser.add_argument("--gui", action="store_true", help="show the PyBullet GUI")
    parser.add_argument("--json", action="store_true", help="print one JSON object as the last line")


def _plan(args) -> list[tuple[str, str]]:
    from vla import VLAError, did_you_mean
    from vla.envs import SPLITS, TASKS, parse_instruction

    if args.episodes < 1:
        raise VLAError(f"--episodes must be at least 1; got {args.episodes}.")
    if args.video and args.image_size <= 0:
        raise VLAError("--video needs camera images; give --image-size of at least 8.")
    if args.instruction is not None:
        task = parse_instruction(args.instruction).task
        if args.task not in (None, task):
            raise VLAError(f"--task {args.task!r} does not match the instruction, which is a {task!r} command.")
        tasks = [task]
    else:
        task = args.task or "reach"
        if task != "all" and task not in TASKS:
            raise VLAError(f"unknown task {task!r}; " + did_you_mean(task, [*TASKS, "all"]))
        tasks = list(TASKS) if task == "all" else [task]
    if args.split != "all" and args.split not in SPLITS:
        raise VLAError(f"unknown split {args.split!r}; " + did_you_mean(args.split, [*SPLITS, "all"]))
    splits = list(SPLITS) if args.split == "all" else [args.split]
    return [(t, s) for s in splits for t in tasks]


def _policy(name: str):
    if name in ("oracle", "random"):
        return name
    from vla import VLAError

    try:
        from vla.models import load_policy
    except ImportError as exc:
        raise VLAError(f"policy {name!r} needs vla.models, which cannot be imported ({exc}); "
                       "allowed without it: oracle, random.") from None
    return load_policy(name)


def run(args: argparse.Namespace) -> int:
    from rich.progress import Progress

    from vla.envs import make_env
    from vla.envs.rollout import run_episode
    from vla.envs.video import VideoWriter

    plan = _plan(args)
    policy = _policy(args.policy)
    options = {"instruction": args.instruction} if args.instruction else None
    video = VideoWriter(args.video) if args.video else None
    results = []
    try:
        with Progress(transient=True, console=_stderr_console()) as bar:
            job = bar.add_task("episodes", total=len(plan) * args.episodes)
            for task, split in plan:
                env = make_env(task, split, image_size=args.image_size, render_mode="human" if args.gui else None)
                wins = 0
                for i in range(args.episodes):
                    ep = run_episode(env, policy, args.seed + i, options, keep_frames=video is not None)
                    wins += ep.success
                    for frame in ep.frames:
                        video.write(frame)
                    bar.advance(job)
                env.close()
                results.append({"task": task, "split": split, "episodes": args.episodes,
                                "success_rate": wins / args.episodes, "last_instruction": ep.instruction})
                bar.console.print(_line(results[-1]))
    except BaseException:
        if video:
            video.abort()
        raise
    if video:
        video.close()
    return _report(args, results)


def _stderr_console():
    from rich.console import Console

    return Console(file=sys.stderr)


def _line(r: dict) -> str:
    return f"{r['task']:8s} {r['split']:16s} success {r['success_rate'] * 100:5.1f}% over {r['episodes']} episodes"


def _report(args, results: list[dict]) -> int:
    for r in results:
        print(_line(r))
    total = sum(r["success_rate"] * r["episodes"] for r in results) / sum(r["episodes"] for r in results)
    if len(results) > 1:
        print(f"overall success {total * 100:.1f}%")
    if args.json:
        one = results[0] if len(results) == 1 else None
        out = {"task": one["task"] if one else (args.task or "all"), "split": one["split"] if one else args.split,
               "episodes": args.episodes, "success_rate": total, "policy": args.policy}
        if args.instruction:
            out["instruction"] = args.instruction
        if not one:
            out["results"] = results
        print(json.dumps(out))
    return 0
