"""`vla bench ros`: image-to-action latency at 10 and 30 Hz camera rates, a memory soak, and closed-loop
success through ROS 2 vs the same episodes run directly (see agent/ros/bench.py for what each figure is).
"""
from __future__ import annotations

import argparse
import json
import os


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--policy", default="default", help='"default" (shipped) or a checkpoint directory')
    parser.add_argument("--seconds", type=float, default=30.0, help="length of each latency run")
    parser.add_argument("--soak-minutes", type=float, default=10.0, help="30 Hz soak length (0 = skip)")
    parser.add_argument("--episodes", type=int, default=10, help="closed-loop episodes each way (0 = skip)")
    parser.add_argument("--task", default="pick")
    parser.add_argument("--seed", type=int, default=1000)
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--json", action="store_true", help="print one JSON object as the last line")


def run(args: argparse.Namespace) -> int:
    import rclpy
    from rich.progress import Progress

    from vla.agent.ros import bench
    from vla.models.policy.policy import load_policy

    os.environ.setdefault("ROS_DOMAIN_ID", str(1 + os.getpid() % 101))
    policy = load_policy(args.policy)
    result: dict = {"policy": args.policy, "cpu_count": os.cpu_count(), "load_avg_1m": os.getloadavg()[0]}
    rclpy.init(args=["vla"])
    try:
        with Progress(transient=True) as progress:
            for hz in (10.0, 30.0):
                bar = progress.add_task(f"latency at {hz:g} Hz", total=args.seconds)
                run = bench.run_stream(policy, hz, args.seconds, lambda t, b=bar: progress.update(b, completed=t), 1.0)
                result[f"latency_{hz:g}hz"] = {k: v for k, v in run.items() if k != "rss_samples"}
            if args.soak_minutes > 0:
                seconds = args.soak_minutes * 60
                bar = progress.add_task(f"soak {args.soak_minutes:g} min at 30 Hz", total=seconds)
                soak = bench.run_stream(policy, 30.0, seconds, lambda t: progress.update(bar, completed=t), 10.0)
                result["soak"] = {"minutes": args.soak_minutes, "actions": soak["actions"], "p50_ms": soak["p50_ms"],
                                  "p99_ms": soak["p99_ms"], "rss_start_mb": round(soak["rss_samples"][0][1], 1),
                                  "rss_end_mb": round(soak["rss_samples"][-1][1], 1)}
                result["soak_rss_growth_mb"] = bench.rss_growth(soak["rss_samples"])
            if args.episodes > 0:
                eps = bench.episodes(args.task, args.episodes, args.seed)
                bar = progress.add_task("closed loop: direct, then ROS 2", total=2 * len(eps))
                step = lambda: progress.advance(bar)  # noqa: E731
                direct = bench.run_direct(policy, args.task, eps, args.image_size, step)
                try:
                    ros = bench.run_ros(policy, args.task, eps, args.image_size, step)
                except (RuntimeError, TimeoutError) as exc:  # keep the figures measured so far
                    result["closed_loop"] = {"error": str(exc)}
                else:
                    result["closed_loop"] = {"task": args.task, "episodes": len(eps), "seed": args.seed,
                                             "direct_success": sum(direct) / len(eps),
                                             "ros_success": sum(ros) / len(eps),
                                             "agree": sum(a == b for a, b in zip(direct, ros))}
                    result["success_gap_points"] = round(100 * abs(sum(direct) - sum(ros)) / len(eps), 1)
    finally:
        rclpy.try_shutdown()
    top = result["latency_30hz"]
    result.update(p50_ms=top["p50_ms"], p99_ms=top["p99_ms"], rate_hz=top["rate_hz"])
    _print(result)
    if args.json:
        print(json.dumps(result))
    return 0


def _print(r: dict) -> None:
    for hz in ("10", "30"):
        x = r[f"latency_{hz}hz"]
        print(f"camera {hz} Hz: image->action p50 {x['p50_ms']} ms, p99 {x['p99_ms']} ms, "
              f"{x['rate_hz']} actions/s ({x['frames_sent']} frames)")
    if "soak" in r:
        s = r["soak"]
        print(f"soak {s['minutes']:g} min at 30 Hz: {s['actions']} actions, RSS {s['rss_start_mb']} -> "
              f"{s['rss_end_mb']} MB, growth after warm-up {r['soak_rss_growth_mb']} MB")
    if "error" in r.get("closed_loop", {}):
        print(f"closed loop failed: {r['closed_loop']['error']}")
    elif "closed_loop" in r:
        c = r["closed_loop"]
        print(f"closed loop {c['task']} x{c['episodes']}: direct {c['direct_success']:.0%}, through ROS 2 "
              f"{c['ros_success']:.0%} (gap {r['success_gap_points']} points, {c['agree']} episodes agree)")
