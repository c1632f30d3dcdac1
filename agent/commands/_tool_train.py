"""Shared argument handling of `vla train clip|vlm|diffusion`: preset, dotted overrides, output directory."""
from __future__ import annotations

import json


def add_arguments(parser, kind: str) -> None:
    parser.add_argument("overrides", nargs="*", help="dotted config overrides, e.g. train.steps=100")
    parser.add_argument("--preset", default="tiny", help=f"preset in configs/{kind}/ or a YAML path (default tiny)")
    parser.add_argument("--out", default=None, help=f"output checkpoint directory (default runs/{kind}/<preset>)")
    parser.add_argument("--json", action="store_true", help="print the final metrics as one JSON object")


def run(args, kind: str, train_fn) -> int:
    from vla.agent.perception.runs import load_run

    run_cfg = load_run(kind, args.preset, args.overrides)
    out = args.out or f"runs/{kind}/{run_cfg.name}"
    metrics = train_fn(run_cfg, out)
    if args.json:
        print(json.dumps({"out": out, **metrics}))
    else:
        print(f"saved {kind} to {out}: " + ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                                                  for k, v in metrics.items()))
    return 0
