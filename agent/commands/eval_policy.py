"""`vla eval --policy PATH|default --task T|all --split S --episodes N`: closed-loop success rates.

Writes <out>/<split>/<task>/eval_info.json (LeRobot schema) and videos of the first episodes;
`--json` prints {"policy", "split", "episodes", "pc_success", "per_task", "per_reference"} as the last line;
per_reference is success by how the instruction singles out its object (plain, size or relation).
"""
from __future__ import annotations

import json
from pathlib import Path


def add_arguments(parser) -> None:
    parser.add_argument("--policy", default="default", help="checkpoint directory or 'default' (shipped weights)")
    parser.add_argument("--task", default="all", help="task name, comma-separated names, or 'all'")
    parser.add_argument("--split", default="seen", help="seen, unseen_colors, unseen_combos or unseen_phrasings")
    parser.add_argument("--episodes", type=int, default=10, help="episodes per task")
    parser.add_argument("--workers", type=int, default=1, help="worker processes")
    parser.add_argument("--out", default="runs/eval", help="output directory (eval_info.json, videos)")
    parser.add_argument("--videos", type=int, default=2, help="record the first N episodes of each task")
    parser.add_argument("--seed", type=int, default=None, help="first episode seed (default 1000000)")
    parser.add_argument("--decoding", choices=("parallel", "autoregressive"),
                        help="override the checkpoint's action decoding")
    parser.add_argument("--execute", type=int,
                        help="actions executed from each predicted chunk (default: the checkpoint's)")
    parser.add_argument("--ensemble", type=float, help="temporal ensembling: predict every step and average the "
                        "live chunks, the one predicted i steps ago weighted exp(-ENSEMBLE*i)")
    parser.add_argument("--replan", choices=("chunk", "adaptive"),
                        help="when to predict the next chunk: after --execute actions (chunk), or after every "
                        "action except through pauses and gripper switches (adaptive); default: the checkpoint's")
    parser.add_argument("--commands", choices=("whole", "steps"),
                        help="a chained instruction as a whole, or one command at a time, each judged done from "
                        "the policy's own observations, the arm sent home between them; default: the checkpoint's")
    parser.add_argument("--hold", choices=("on", "off"),
                        help="keep a grasp: once the fingers closed on something, reopening away from the goal "
                        "becomes a short lift (on), or the policy's actions as they are (off); default: the "
                        "checkpoint's")
    parser.add_argument("--push-end", choices=("on", "off"),
                        help="a push's goal: where the expert's push would end, at the named side or beside the "
                        "landmark the goal pointer finds (on), or the pointer's learnt offset from the pushed "
                        "object (off); default: the checkpoint's")
    parser.add_argument("--goal", choices=("auto", "own", "oracle"), default=None,
                        help="the goal the grounding token carries: auto (the attached goal pointer's, else the "
                        "grounding head's), own (the head's, ignoring a pointer) or oracle (the scripted expert's: "
                        "a diagnostic of what perfect grounding is worth)")
    parser.add_argument("--json", action="store_true", help="print a JSON summary as the last line")


def run(args) -> int:
    from vla.agent.eval.evaluate import EVAL_SEED, evaluate, resolve_tasks

    tasks = resolve_tasks(args.task)
    summary = evaluate(args.policy, tasks, args.split, args.episodes, args.workers, Path(args.out),
                       EVAL_SEED if args.seed is None else args.seed, args.videos,
                       decoding=args.decoding, execute=args.execute, ensemble=args.ensemble,
                       goal=args.goal, replan=args.replan, commands=args.commands,
                       hold=None if args.hold is None else args.hold == "on",
                       push_end=None if args.push_end is None else args.push_end == "on")
    width = max(len(t) for t in tasks)
    print(f"policy {summary['policy']}  split {args.split}  {args.episodes} episodes per task")
    for task, pc in summary["per_task"].items():
        print(f"  {task.ljust(width)}  {pc:6.1f} %")
    print(f"  {'mean'.ljust(width)}  {summary['pc_success']:6.1f} %   (eval_info.json under {args.out}/{args.split}/)")
    print(f"  {summary['actions_per_prediction']:.2f} actions per predicted chunk")
    print("  by reference: " + ", ".join(f"{k} {pc:.1f} %" for k, pc in summary["per_reference"].items()))
    if args.json:
        print(json.dumps(summary))
    return 0
