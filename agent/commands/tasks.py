"""`vla tasks`: list the task suite's tasks, splits, colours and phrasing templates."""
from __future__ import annotations

import argparse
import json


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def catalogue() -> dict:
    from vla.envs import vocab
    from vla.envs.splits import N_SEEN_TEMPLATES, SEEN_COLORS, SPLITS, UNSEEN_COLORS
    from vla.envs.tasks import TASKS

    tasks = [{"name": name, "env_id": cls.ENV_ID, "templates": list(cls.TEMPLATES),
              "held_out_templates": list(cls.TEMPLATES[N_SEEN_TEMPLATES:]), "max_steps": cls.MAX_STEPS}
             for name, cls in TASKS.items()]
    return {"tasks": tasks, "splits": list(SPLITS), "colors": list(vocab.COLOR_NAMES),
            "seen_colors": SEEN_COLORS, "unseen_colors": UNSEEN_COLORS, "shapes": vocab.SHAPES,
            "sizes": vocab.SIZES, "sides": list(vocab.SIDES)}


def run(args: argparse.Namespace) -> int:
    cat = catalogue()
    if args.json:
        print(json.dumps(cat))
        return 0
    for task in cat["tasks"]:
        print(f"{task['name']:8s} {task['env_id']:14s} (max {task['max_steps']} steps)")
        for template in task["templates"]:
            mark = "  [held out: unseen_phrasings]" if template in task["held_out_templates"] else ""
            print(f"    {template}{mark}")
    print(f"splits: {', '.join(cat['splits'])}")
    print(f"colours: {', '.join(cat['colors'])} (unseen_colors uses {', '.join(cat['unseen_colors'])})")
    print(f"shapes: {', '.join(cat['shapes'])}; block sizes: {', '.join(cat['sizes'])}")
    return 0
