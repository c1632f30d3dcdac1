"""`vla eval offline --policy PATH --data DIR`: held-out loss, token accuracy and vision reliance.

Prints one line per metric for the frames as recorded and with the images shuffled between frames (a policy
that ignores its camera scores the same on both); `--json` prints {"plain", "images_shuffled", "frames",
"policy", "data"} as the last line.
"""
from __future__ import annotations

import json


def add_arguments(parser) -> None:
    parser.add_argument("--policy", default="default", help="checkpoint directory or 'default'")
    parser.add_argument("--data", required=True, help="held-out LeRobot dataset (e.g. from `vla collect --seed 77`)")
    parser.add_argument("--frames", type=int, default=1024, help="random frames to score (default 1024)")
    parser.add_argument("--json", action="store_true", help="print a JSON summary as the last line")


def run(args) -> int:
    from vla import VLAError
    from vla.agent.eval.offline import evaluate_offline

    if args.frames < 1:
        raise VLAError(f"--frames must be at least 1 (got {args.frames}).")
    result = evaluate_offline(args.policy, args.data, args.frames)
    print(f"policy {result['policy']} on {result['frames']} frames of {result['data']}")
    for key, value in result["plain"].items():
        print(f"  {key:12s} {value:10.4f}   images shuffled {result['images_shuffled'].get(key, float('nan')):10.4f}")
    if args.json:
        print(json.dumps(result))
    return 0
