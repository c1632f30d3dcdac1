"""`vla run "<command>"`: the natural-language agent on a simulated scene; `vla run` alone starts a dialogue.

    vla run "put the red block in the green bowl, then tell me what is left on the table" --video out.mp4
    vla run --policy oracle            # interactive: prompt, history, `help`, `reset`, `quit`

The planner turns the command into steps (manipulation -> the policy, questions -> VQA or captioning,
"where is" -> CLIP localisation, "imagine" -> diffusion); manipulation steps run closed loop and are verified.
With `--json` the last stdout line is {"command", "success", "steps": [...], "answer", ...}.
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from vla import VLAError

HELP = """Talk to the robot in plain words, for example:
  put the red block in the green bowl, then tell me what is left on the table
  pick up the blue cube and put it on the yellow block      where is the green bowl?
  push it to the left      what did you just do?      what changed?      imagine a tower of blocks
Session commands: help, history, reset [SEED], quit."""


def add_arguments(parser) -> None:
    parser.add_argument("command", nargs="?", default=None, help="what to do; omit for an interactive session")
    parser.add_argument("--task-scene", default=None,
                        help="build the scene of this task instead of one from the command")
    parser.add_argument("--seed", type=int, default=0, help="scene seed")
    parser.add_argument("--split", default="seen", help="colour/phrasing split for sampled scenes")
    parser.add_argument("--policy", default="default",
                        help="'default' (the shipped VLA), a checkpoint directory, or 'oracle' (the scripted expert)")
    parser.add_argument("--planner", default="grammar", help="'grammar' (no model) or 'llm'")
    parser.add_argument("--llm-model", default=None, help="local Hugging Face chat model directory for --planner llm")
    parser.add_argument("--verify", default="env", help="'env' (simulator success) or 'vqa' (ask the VQA tool)")
    parser.add_argument("--retries", type=int, default=3, help="extra attempts per failed manipulation step")
    parser.add_argument("--step-budget", type=int, default=None, help="control steps per attempt (default: the task's)")
    parser.add_argument("--no-home", action="store_true",
                        help="start each manipulation attempt where the last one ended, not from the start pose")
    parser.add_argument("--no-point", action="store_true",
                        help="let the policy's goal pointer choose its object alone (the agent does not point it at "
                             "the object it grounded)")
    parser.add_argument("--no-guard", action="store_true",
                        help="let the policy alone: no approach guards (a grasp not held until over its object, a "
                             "push not brought down behind it) and no keeping a block for the bowl shut")
    parser.add_argument("--image-size", type=int, default=128, help="camera image size in pixels")
    parser.add_argument("--device", default="cpu", help="torch device for the policy and the tools")
    parser.add_argument("--tool-weights", action="append", default=[], metavar="TOOL=PATH",
                        help="use these weights for a perception tool instead of the shipped ones (repeatable)")
    parser.add_argument("--video", default=None, help="write an MP4 with the command, steps and tool outputs drawn on")
    parser.add_argument("--log", default=None, help="write the JSON log of every step to this file")
    parser.add_argument("--rerun", default=None, help="also log the episode to this .rrd file (needs rerun-sdk)")
    parser.add_argument("--json", action="store_true", help="print one JSON object as the last stdout line")


def tool_weights(pairs: list[str]) -> dict[str, str]:
    """["vqa=/ckpt/vlm", ...] -> {"vqa": "/ckpt/vlm"}; names must be registered tools."""
    from vla import did_you_mean
    from vla.models.tools import TOOLS

    out = {}
    for pair in pairs:
        name, sep, path = pair.partition("=")
        if not sep or not path:
            raise VLAError(f"--tool-weights takes TOOL=PATH, got {pair!r}.")
        if name not in TOOLS:
            raise VLAError(f"unknown tool {name!r} in --tool-weights; " + did_you_mean(name, sorted(TOOLS)))
        out[name] = path
    return out


def build_session(args, first_command: str | None):
    """Env (scene from --task-scene or from what the command mentions), actor, tools, planner, session."""
    from vla.agent.agent import Actor, Executor, Tools
    from vla.agent.overlay import VideoRecorder
    from vla.agent.planner import get_planner
    from vla.agent.planner.scene import scene_objects
    from vla.agent.session import Session
    from vla.envs import make_env

    weights = tool_weights(args.tool_weights)
    objects = [] if args.task_scene or not first_command else scene_objects(first_command)
    env = make_env(args.task_scene or "place", split=args.split, image_size=args.image_size)
    options = {"objects": objects} if objects else None
    try:
        obs, _ = env.reset(seed=args.seed, options=options)
    except VLAError:  # e.g. too many objects to fit: fall back to the task's own sampled scene
        objects, (obs, _) = [], env.reset(seed=args.seed)
    scene = {"task_scene": args.task_scene, "objects_requested": objects, "seed": args.seed, "split": args.split}
    actor = Actor(args.policy, env, device=args.device)
    planner = get_planner(args.planner, **({"model": args.llm_model} if args.planner == "llm" else {}))
    recorder = VideoRecorder() if args.video else None
    logger = None
    if args.rerun:
        from vla.agent.rerun_log import RerunLogger

        logger = RerunLogger(args.rerun)
    sinks = [sink.on_frame for sink in (recorder, logger) if sink is not None]

    def on_frame(frame, label):
        for sink in sinks:
            sink(frame, label)

    executor = Executor(env, actor, Tools(device=args.device, weights=weights),
                        retries=args.retries, step_budget=args.step_budget,
                        verify=args.verify, on_frame=on_frame, home=not args.no_home,
                        point=not args.no_point, guard=not args.no_guard)
    session = Session(env, executor, planner, recorder=recorder, logger=logger)
    session.start(obs)
    session.scene = scene
    return session


def _print_turn(turn) -> None:
    for record in turn.records[1:]:
        tool = f"[{record.tool}] " if record.tool else ""
        mark = {True: "ok", False: "FAILED", None: ""}[record.success] if record.kind != "refuse" else "refused"
        print(f"  {record.kind:<10} {tool}{mark} ({record.ms:.0f} ms)")
    print(f"robot> {turn.answer}")


def _summary(session, turns) -> dict:
    return {"policy": session.executor.actor.name, "planner": session.planner.name, "verify": session.executor.verify,
            "scene": session.scene}


def _write_json(path: str, payload: dict) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.partial")
    tmp.write_text(json.dumps(payload, indent=1))
    os.replace(tmp, path)


def _finish(args, session, turns, last_json: dict) -> None:
    if args.video and session.recorder is not None and session.recorder.shots:
        session.recorder.save(args.video)
        print(f"video: {args.video}", file=sys.stderr)
    if args.log:
        _write_json(args.log, {**_summary(session, turns), "turns": [t.to_json() for t in turns]})
    if session.logger is not None:
        session.logger.close()
    if args.json:
        print(json.dumps(last_json))


def run(args) -> int:
    if args.command is not None and not args.command.strip(" .,;!?\t\n"):
        raise VLAError("the command is empty; say what to do, e.g. vla run \"put the red block in the green bowl\".")
    if args.command is None:
        return repl(args)
    session = build_session(args, args.command)
    print(f"you> {args.command}")
    turn = session.ask(args.command)
    _print_turn(turn)
    _finish(args, session, [turn], {**turn.to_json(), **_summary(session, [turn])})
    return 0 if turn.success else 1


def repl(args, stdin=None) -> int:
    """Interactive session on one persistent scene; reads commands line by line until `quit` or end of input."""
    stdin = stdin or sys.stdin
    interactive = stdin.isatty()
    session = build_session(args, None)
    print("Type a command, `help` for examples, `quit` to leave.")
    turns = []
    while True:
        if interactive:
            print("you> ", end="", flush=True)
        line = stdin.readline()
        if not line:
            break
        line = line.strip()
        if not interactive and line:
            print(f"you> {line}")
        if not line:
            continue
        word = line.lower().split()[0]
        if word in ("quit", "exit", "bye"):
            break
        if word == "help":
            print(HELP)
        elif word == "history":
            for i, t in enumerate(turns):
                print(f"  {i + 1}. {t.command} -> {'done' if t.success else 'not done'}: {t.answer}")
        elif word == "reset":
            _reset(session, line)
        else:
            turn = session.ask(line)
            turns.append(turn)
            _print_turn(turn)
    _finish(args, session, turns, {**_summary(session, turns), "turns": [t.to_json() for t in turns],
                                   "success": all(t.success for t in turns)})
    return 0


def _reset(session, line: str) -> None:
    parts = line.split()
    try:
        seed = int(parts[1]) if len(parts) > 1 else session.scene["seed"] + 1
    except ValueError:
        print(f"robot> `reset` takes a whole-number seed, got {parts[1]!r}.")
        return
    obs, info = session.env.reset(seed=seed)
    session.scene = {**session.scene, "seed": seed}
    session.start(obs)
    print(f"robot> New scene (seed {seed}).")
