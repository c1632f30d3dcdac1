"""`vla bench sim`: control steps per second (128x128 RGB, state-only, and the stock-Panda scene) and oracle
episodes per minute, measured side by side in one run.

Figures are CPU seconds of this single-threaded process (so "per core", robust to other load on the machine);
wall-clock figures are printed alongside with a `wall_` prefix.
"""
from __future__ import annotations

import argparse
import json
import sys
import time


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--task", default="place", help="task whose scenes and oracle are stepped")
    parser.add_argument("--steps", type=int, default=400, help="control steps per measurement")
    parser.add_argument("--episodes", type=int, default=10, help="oracle episodes for episodes/min")
    parser.add_argument("--ik-targets", type=int, default=30, help="random targets for the IK accuracy figure")
    parser.add_argument("--repeats", type=int, default=3,
                        help="measure each steps/s figure this many times and report the median (default 3)")
    parser.add_argument("--json", action="store_true", help="print one JSON object as the last line")


def measure_steps(task: str, steps: int, **env_kwargs) -> tuple[float, float]:
    """(cpu, wall) control steps per second over oracle episodes; resets and oracle calls are not timed."""
    from vla.envs import make_env

    env = make_env(task, **env_kwargs)
    env.reset(seed=0)
    cpu = wall = 0.0
    episode = 0
    for _ in range(steps):
        action = env.oracle_action()
        c0, w0 = time.process_time(), time.perf_counter()
        _, _, terminated, truncated, _ = env.step(action)
        cpu, wall = cpu + time.process_time() - c0, wall + time.perf_counter() - w0
        if terminated or truncated:
            episode += 1
            env.reset(seed=episode)
    env.close()
    return steps / cpu, steps / wall


def median_steps(repeats: int, task: str, steps: int, **env_kwargs) -> tuple[float, float]:
    """The median (cpu, wall) steps/s of `repeats` runs of `measure_steps`: a shared machine varies run to run."""
    import numpy as np

    runs = np.array([measure_steps(task, steps, **env_kwargs) for _ in range(repeats)])   # (R, 2)
    cpu, wall = np.median(runs, axis=0)
    return float(cpu), float(wall)


def measure_ik(targets: int = 30) -> float:
    """Median distance (mm) between the grasp point and random end-effector targets once the arm has settled."""
    import numpy as np

    from vla.envs import make_env

    env = make_env("reach", image_size=0)
    env.reset(seed=0)
    robot, rng, errors = env.world.robot, np.random.default_rng(0), []
    for _ in range(targets):
        target, yaw = rng.uniform([0.3, -0.25, 0.03], [0.7, 0.25, 0.3]), rng.uniform(-1.2, 1.2)
        for _ in range(40):
            delta = np.r_[np.clip(target - robot.target_pos, -0.05, 0.05), np.clip(yaw - robot.target_yaw, -0.3, 0.3)]
            robot.command_ee(delta, False)
            env.world.step()
        errors.append(np.linalg.norm(robot.ee_pose()[0] - target))
    env.close()
    return float(np.median(errors) * 1000)


def measure_episodes(task: str, episodes: int) -> tuple[float, float, float]:
    """(cpu, wall) oracle episodes per minute with 128x128 RGB observations, resets included; and success rate."""
    from vla.envs import make_env
    from vla.envs.rollout import run_episode

    env = make_env(task, image_size=128)
    c0, w0 = time.process_time(), time.perf_counter()
    wins = sum(run_episode(env, "oracle", seed).success for seed in range(episodes))
    cpu, wall = time.process_time() - c0, time.perf_counter() - w0
    env.close()
    return 60 * episodes / cpu, 60 * episodes / wall, wins / episodes


def run(args: argparse.Namespace) -> int:
    from vla import VLAError, did_you_mean
    from vla.envs import TASKS

    if args.task not in TASKS:
        raise VLAError(f"unknown task {args.task!r}; " + did_you_mean(args.task, TASKS))
    if args.steps < 10 or args.episodes < 1 or args.repeats < 1:
        raise VLAError("--steps must be at least 10, --episodes and --repeats at least 1.")
    print(f"measuring {args.task}: {args.steps} steps per scene (median of {args.repeats}), {args.episodes} oracle "
          "episodes ...", file=sys.stderr)
    rgb, rgb_wall = median_steps(args.repeats, args.task, args.steps, image_size=128)
    state, state_wall = median_steps(args.repeats, args.task, args.steps, image_size=0)
    stock, stock_wall = median_steps(args.repeats, args.task, args.steps, image_size=128, light_robot=False)
    eps, eps_wall, success = measure_episodes(args.task, args.episodes)
    ik_mm = measure_ik(max(1, args.ik_targets))
    out = {"rgb128_steps_per_s": round(rgb, 1), "state_steps_per_s": round(state, 1),
           "stock_rgb128_steps_per_s": round(stock, 1), "ratio_vs_stock": round(rgb / stock, 2),
           "oracle_episodes_per_min": round(eps, 1), "oracle_success": success, "ik_median_error_mm": round(ik_mm, 3),
           "wall_rgb128_steps_per_s": round(rgb_wall, 1), "wall_state_steps_per_s": round(state_wall, 1),
           "wall_stock_rgb128_steps_per_s": round(stock_wall, 1), "wall_oracle_episodes_per_min": round(eps_wall, 1),
           "task": args.task, "repeats": args.repeats,
           "clock": "process CPU time (wall_* : wall clock), median of repeats"}
    print(f"128x128 RGB      {rgb:8.1f} steps/s   (wall {rgb_wall:.1f})")
    print(f"state only       {state:8.1f} steps/s   (wall {state_wall:.1f})")
    print(f"stock Panda RGB  {stock:8.1f} steps/s   (wall {stock_wall:.1f})   ratio {rgb / stock:.2f}x")
    print(f"oracle episodes  {eps:8.1f} per min   (wall {eps_wall:.1f}), success {success * 100:.0f}%")
    print(f"IK median error  {ik_mm:8.3f} mm after settling")
    if args.json:
        print(json.dumps(out))
    return 0
