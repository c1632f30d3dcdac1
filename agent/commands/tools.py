"""`vla tools ACTION`: run one perception tool (list, classify, locate, caption, vqa, generate) from the shell.

IMAGE is a PNG/JPEG path or `--scene TASK:SEED` (a simulated scene rendered with vla.envs). Every action goes
through the tool registry (`vla.models.tools.get_tool`), exactly as the agent and the ROS 2 node do.
"""
from __future__ import annotations

import json

from vla import VLAError

ACTIONS = ("list", "classify", "locate", "caption", "vqa", "generate")


def _common(sub, image: bool = True) -> None:
    if image:
        sub.add_argument("image", nargs="?", help="PNG/JPEG image path (or use --scene)")
        sub.add_argument("--scene", metavar="TASK:SEED", help="render a simulated scene instead of reading IMAGE")
        sub.add_argument("--scene-size", type=int, default=96, help="rendered scene size in pixels (default 96)")
    sub.add_argument("--weights", default="default", help="checkpoint (default: shipped models/weights/<tool>)")
    sub.add_argument("--arch", default=None, help="OpenCLIP architecture of a checkpoint file given as --weights")
    sub.add_argument("--device", default="cpu")
    sub.add_argument("--json", action="store_true", help="print one JSON object")


def add_arguments(parser) -> None:
    subs = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    listing = subs.add_parser("list", help="tools with descriptions and JSON schemas")
    listing.add_argument("--json", action="store_true")
    sub = subs.add_parser("classify", help="zero-shot classification among labels (CLIP)")
    _common(sub)
    sub.add_argument("--labels", required=True, help='comma-separated labels, e.g. "red block,blue bowl"')
    sub = subs.add_parser("locate", help="box and heatmap of a described object (CLIP)")
    _common(sub)
    sub.add_argument("text", nargs="?", help="the object to find (after IMAGE, or alone with --scene)")
    sub = subs.add_parser("caption", help="one-sentence description of the image")
    _common(sub)
    sub = subs.add_parser("vqa", help="answer a question about the image")
    _common(sub)
    sub.add_argument("question", nargs="?", help="the question (after IMAGE, or alone with --scene)")
    sub = subs.add_parser("generate", help="text-to-image diffusion")
    sub.add_argument("prompt", help='e.g. "a red block in a green bowl"')
    _common(sub, image=False)
    sub.add_argument("--out", default="generated.png", help="where to write the PNG (default generated.png)")
    sub.add_argument("--seed", type=int, default=0)
    sub.add_argument("--steps", type=int, default=25)
    sub.add_argument("--upscale", type=int, default=4, help="nearest-neighbour upscaling of the saved PNG")


def read_image(path: str):
    """uint8 (H, W, 3) RGB from a PNG/JPEG file, or a VLAError naming what was wrong."""
    import os

    import cv2

    if not os.path.isfile(path):
        raise VLAError(f"image {path!r} does not exist (give a PNG/JPEG file or --scene TASK:SEED).")
    image = cv2.imread(path, cv2.IMREAD_COLOR)
    if image is None:
        raise VLAError(f"{path!r} is not a readable image; give a PNG or JPEG file.")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def render_scene(spec: str, size: int = 96):
    """uint8 (S, S, 3) front image of a simulated scene given as 'TASK:SEED'."""
    task, _, seed = spec.partition(":")
    if not seed.isdigit():
        raise VLAError(f"--scene must look like TASK:SEED (e.g. place:3), got {spec!r}.")
    from vla.envs import make_env

    env = make_env(task, image_size=size)
    try:
        obs, _ = env.reset(seed=int(seed))
    finally:
        env.close()
    return obs["front"]


def _shift_positional(args, name: str) -> None:
    """With --scene, the single positional lands in `image`; move it to `name` (the text/question slot)."""
    if args.scene and getattr(args, name) is None and args.image is not None:
        setattr(args, name, args.image)
        args.image = None


def _image(args):
    if args.scene and args.image:
        raise VLAError("give either an IMAGE path or --scene TASK:SEED, not both.")
    if args.scene:
        return render_scene(args.scene, args.scene_size)
    if not args.image:
        raise VLAError("no image given; pass an IMAGE path or --scene TASK:SEED.")
    return read_image(args.image)


def _inputs(args) -> tuple[str, dict]:
    if args.action == "classify":
        labels = [s.strip() for s in args.labels.split(",") if s.strip()]
        if not labels:
            raise VLAError('--labels is empty; give comma-separated labels, e.g. "red block,blue bowl".')
        return "classify", {"image": _image(args), "labels": labels}
    if args.action == "locate":
        _shift_positional(args, "text")
        if not args.text:
            raise VLAError('locate needs the object to find, e.g. vla tools locate IMAGE "the red block".')
        return "locate", {"image": _image(args), "text": args.text}
    if args.action == "vqa":
        _shift_positional(args, "question")
        if not args.question or not args.question.strip():
            raise VLAError('vqa needs a non-empty question, e.g. vla tools vqa IMAGE "what colour is the bowl?".')
        return "vqa", {"image": _image(args), "question": args.question}
    if args.action == "caption":
        return "caption", {"image": _image(args)}
    return "generate", {"prompt": args.prompt, "seed": args.seed, "steps": args.steps}


def run(args) -> int:
    from vla.models.tools import get_tool, list_tools

    if args.action == "list":
        specs = list_tools()
        if args.json:
            print(json.dumps({"tools": specs}))
        else:
            for spec in specs:
                print(f"{spec['name']:9s} {spec['description']}")
        return 0
    name, inputs = _inputs(args)
    options = {"arch": args.arch} if args.arch and name in ("classify", "locate") else {}
    result = get_tool(name, weights=args.weights, device=args.device, **options)(**inputs)
    if name == "generate":
        result = _save_image(result["image"], args.out, args.upscale)
    if args.json:
        print(json.dumps(result))
    elif name == "classify":
        for label, p in sorted(result["probs"].items(), key=lambda kv: -kv[1]):
            print(f"{p:6.3f}  {label}")
    elif name == "locate":
        print(f"box {result['box']} centre {result['center']} score {result['score']:.3f}")
    else:
        print(next(iter(result.values())))
    return 0


def _save_image(image, out: str, upscale: int) -> dict:
    import cv2
    import numpy as np

    big = np.repeat(np.repeat(image, max(upscale, 1), 0), max(upscale, 1), 1)
    if not cv2.imwrite(out, cv2.cvtColor(big, cv2.COLOR_RGB2BGR)):
        raise VLAError(f"could not write the image to {out!r}; give a writable .png path.")
    return {"out": out, "height": int(image.shape[0]), "width": int(image.shape[1])}
