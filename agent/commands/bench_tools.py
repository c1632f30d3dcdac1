"""`vla bench tools [--device cpu|cuda] [IMAGE | --scene TASK:SEED] [--json]`: perception-tool speed.

Median milliseconds per call of each registered tool (classify, locate, caption, vqa, generate at 25 steps) on
one image, and the diffusion model's images per second when it generates a batch (the rate `vla eval tools`
reports on the CPU), with the shipped weights or those given.
"""
from __future__ import annotations

import json
import time

TOOLS = ("classify", "locate", "caption", "vqa", "generate")


def add_arguments(parser) -> None:
    parser.add_argument("image", nargs="?", help="PNG/JPEG image to call the tools on (or use --scene)")
    parser.add_argument("--scene", metavar="TASK:SEED", help="render a simulated scene (default place:0)")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--repeats", type=int, default=5, help="timed calls per tool (median reported)")
    parser.add_argument("--batch", type=int, default=16, help="images per diffusion batch for images/s")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--weights", action="append", default=[], metavar="TOOL=PATH",
                        help="a checkpoint other than the shipped one for a tool (repeatable)")
    parser.add_argument("--json", action="store_true", help="print one JSON object as the last line")


def run(args) -> int:
    import torch

    from vla import VLAError
    from vla.agent.commands.tools import read_image, render_scene
    from vla.agent.perception.tools_report import latency_ms
    from vla.models.diffusion import load_diffusion

    if args.device == "cuda" and not torch.cuda.is_available():
        raise VLAError("--device cuda was asked for but no CUDA device is available; use --device cpu.")
    if args.repeats < 1 or args.batch < 1:
        raise VLAError("--repeats and --batch must be at least 1.")
    if args.image and args.scene:
        raise VLAError("give either an IMAGE path or --scene TASK:SEED, not both.")
    weights = dict.fromkeys(TOOLS, "default")
    for item in args.weights:
        tool, sep, path = item.partition("=")
        if not sep or tool not in weights:
            raise VLAError(f"--weights takes TOOL=PATH with TOOL one of {', '.join(TOOLS)}; got {item!r}.")
        weights[tool] = path
    torch.set_num_threads(max(1, args.threads))
    image = read_image(args.image) if args.image else render_scene(args.scene or "place:0", 96)
    ms, errors = {}, {}
    for name in TOOLS:          # a tool that fails on this device is reported; the others are still measured
        try:
            ms |= latency_ms(image, weights, args.repeats, args.device, names=[name])
        except VLAError:
            raise
        except Exception as exc:                   # noqa: BLE001 - a figure that could not be had is reported
            errors[name] = f"{type(exc).__name__}: {exc}"[:300]
    diffusion = load_diffusion(weights["generate"], device=args.device)
    prompts = ["a red block in a green bowl", "a blue cylinder left of a yellow bowl"] * args.batch
    diffusion.generate_batch(prompts[:2], steps=2)                                       # warm-up
    sync = torch.cuda.synchronize if args.device == "cuda" else (lambda: None)
    start = time.perf_counter()
    diffusion.generate_batch(prompts[: args.batch], steps=25)
    sync()
    per_s = args.batch / (time.perf_counter() - start)
    result = {"device": args.device, "ms_per_call": ms, "diffusion_images_per_s": per_s,
              "diffusion_batch": args.batch, "diffusion_steps": 25, **({"errors": errors} if errors else {})}
    print(f"tools on {args.device}: " + ", ".join(f"{k} {v:.1f} ms" for k, v in ms.items()))
    for name, err in errors.items():
        print(f"{name} failed on {args.device}: {err}")
    print(f"diffusion: {per_s:.2f} images/s (batch {args.batch}, 25 steps)")
    if args.json:
        print(json.dumps(result))
    return 0
