"""`vla train goal`: train the policy's goal pointer (see vla.models.goal, vla.agent.train.goal) and optionally
attach it to a policy checkpoint."""
from __future__ import annotations

import json


def add_arguments(parser) -> None:
    parser.add_argument("overrides", nargs="*", help="dotted config overrides, e.g. train.steps=100")
    parser.add_argument("--preset", default="default", help="preset in configs/goal/ or a YAML path (default default)")
    parser.add_argument("--out", default=None, help="output checkpoint directory (default runs/goal/<preset>)")
    parser.add_argument("--init", default=None, metavar="DIR",
                        help="skip training: use this trained goal pointer checkpoint (with --attach)")
    parser.add_argument("--attach", default=None, metavar="POLICY",
                        help="a policy checkpoint (or `default`) to attach the pointer to; needs --export")
    parser.add_argument("--export", default=None, metavar="DIR", help="where the policy with the pointer goes")
    parser.add_argument("--json", action="store_true", help="print the final metrics as one JSON object")


def run(args) -> int:
    from vla import VLAError
    from vla.agent.perception.runs import load_run
    from vla.agent.train.goal import attach, load_pointer, train_goal

    if bool(args.attach) != bool(args.export):
        raise VLAError("--attach POLICY and --export DIR go together.")
    if args.init and not args.attach:
        raise VLAError("--init only makes sense with --attach POLICY --export DIR.")
    report: dict = {}
    if args.init:
        pointer, out = load_pointer(args.init), args.init
    else:
        run_cfg = load_run("goal", args.preset, args.overrides)
        out = args.out or f"runs/goal/{run_cfg.name}"
        report = train_goal(run_cfg, out)
        pointer = load_pointer(out)
    if args.attach:
        report["exported"] = str(attach(args.attach, pointer, args.export))
    if args.json:
        print(json.dumps({"out": out, **report}))
    else:
        for key, value in report.items():
            print(f"{key}: {json.dumps(value)}")
        print(f"saved goal pointer to {out}")
    return 0
