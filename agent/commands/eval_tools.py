"""`vla eval tools`: CLIP zero-shot/retrieval/localisation, VQA and caption accuracy, diffusion recognisability
and speed, and per-call latency, measured on held-out scenes (seeds and colours never trained on)."""
from __future__ import annotations

import json

from vla import VLAError


def add_arguments(parser) -> None:
    parser.add_argument("--clip", default="default", help="CLIP checkpoint (default: shipped)")
    parser.add_argument("--vlm", default="default", help="captioning/VQA checkpoint (default: shipped)")
    parser.add_argument("--diffusion", default="default", help="diffusion checkpoint (default: shipped)")
    parser.add_argument("--scenes", default="heldout", help="held-out scene set (default heldout)")
    parser.add_argument("--diffusion-images", type=int, default=32,
                        help="images generated for the diffusion check (0: skip it)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def run(args) -> int:
    import torch

    from vla.agent.perception.tools_report import evaluate_tools, print_report

    if args.diffusion_images < 0:
        raise VLAError(f"--diffusion-images must be 0 or more, got {args.diffusion_images}.")
    torch.set_num_threads(args.threads)
    report = evaluate_tools(args.clip, args.vlm, args.diffusion, args.scenes, args.diffusion_images)
    if args.json:
        print(json.dumps(report))
    else:
        print_report(report)
    return 0
