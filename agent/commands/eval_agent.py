"""`vla eval agent`: how well the agent carries out single, compound and paraphrased commands, answers
questions asked mid-session, and how fast it plans.

Commands come from the task suite itself: each (split, task, seed) scene is sampled by the env, whose own
instruction is the command; its "_paraphrased" twin rewrites it with other verbs, synonyms and word order.
"single" covers reach/pick/place/stack/push; "compound" covers "all the red blocks" (put_all) and "A then B"
(chain). After each compound command one question per type is asked, with the true answer taken from the
scene annotation (evaluation side only).

`--verify vqa` makes the agent check its steps as a robot without a simulator would: by asking the VQA tool.
Success is then still the simulator's (every manipulation step's last attempt), and the VQA verdicts are scored
against it.

    vla eval agent --policy oracle --seeds 5 --json
"""
from __future__ import annotations

import json
import random
import re
import sys
import time

import numpy as np

from vla import VLAError

SINGLE_TASKS = ["reach", "pick", "place", "stack", "push"]
#: "all the red blocks" and "A then B" are the suite's compound commands.
COMPOUND_TASKS = ["put_all", "chain"]
CATEGORIES = ("single", "single_paraphrased", "compound", "compound_paraphrased")
QUESTION_TYPES = ("existence", "in", "colour", "count", "holding")
PARAPHRASES = {
    "reach": ["please go over to {obj}", "could you move your gripper to {obj}?"],
    "pick": ["could you grab {obj} for me?", "lift {obj} up, please"],
    "place": ["into {bowl}, put {obj}", "could you please drop {obj} in {bowl}?", "pick up {obj} and put it in {bowl}"],
    "stack": ["put {obj} on top of {base}", "pick up {obj} and place it onto {base}"],
    "push": ["slide {obj} over {where}", "please shove {obj} {where}"],
    "put_all": ["could you put every {color} cube into {bowl}?", "move all of the {color} blocks into {bowl}"],
}
COMPOUND = ["first {a}, and after that {b}", "{a}. Then {b}.", "{b} after you {a}"]
SYNONYMS = {" block": [" block", " cube"], " bowl": [" bowl", " dish"], "small ": ["small ", "little "],
            "large ": ["large ", "big "]}


def add_arguments(parser) -> None:
    parser.add_argument("--policy", default="default", help="'default' (shipped VLA), a checkpoint, or 'oracle'")
    parser.add_argument("--planner", default="grammar", help="'grammar' (no model) or 'llm'")
    parser.add_argument("--llm-model", default=None, help="local Hugging Face chat model directory for --planner llm")
    parser.add_argument("--splits", default="seen,unseen_colors", help="comma-separated splits")
    parser.add_argument("--seeds", type=int, default=3, help="scenes per task and split")
    parser.add_argument("--no-questions", action="store_true", help="skip the mid-session questions")
    parser.add_argument("--retries", type=int, default=3, help="extra attempts per failed manipulation step")
    parser.add_argument("--step-budget", type=int, default=None, help="control steps per attempt")
    parser.add_argument("--verify", default="env",
                        help="how the agent checks a step: 'env' (the simulator) or 'vqa' (asks the VQA tool)")
    parser.add_argument("--no-home", action="store_true",
                        help="start each manipulation attempt where the last one ended, not from the start pose")
    parser.add_argument("--no-point", action="store_true",
                        help="let the policy's goal pointer choose its object alone (the agent does not point it at "
                             "the object it grounded)")
    parser.add_argument("--no-guard", action="store_true",
                        help="let the policy alone: no approach guards (a grasp not held until over its object, a "
                             "push not brought down behind it) and no keeping a block for the bowl shut")
    parser.add_argument("--tasks", default=",".join(SINGLE_TASKS + COMPOUND_TASKS),
                        help="comma-separated tasks whose scenes to command (default: all)")
    parser.add_argument("--tool-weights", action="append", default=[], metavar="TOOL=PATH",
                        help="use these weights for a perception tool instead of the shipped ones (repeatable)")
    parser.add_argument("--image-size", type=int, default=128, help="camera image size in pixels")
    parser.add_argument("--device", default="cpu", help="torch device")
    parser.add_argument("--json", action="store_true", help="print one JSON object as the last stdout line")


def paraphrase(instruction: str, rng: random.Random, embedded: bool = False) -> str:
    """Another wording of a task-suite instruction: other verbs, synonyms and word order. `embedded` picks a
    wording that starts with its verb, so it reads well inside a compound ("... after you put X in Y")."""
    from vla.envs import parse_instruction

    parsed = parse_instruction(instruction)
    if parsed.task == "chain":
        a, b = (_plain(paraphrase(_sub_text(s), rng, embedded=True))
                for s in (parsed.slots["first"], parsed.slots["second"]))
        return rng.choice(COMPOUND).format(a=a, b=b)
    slots = {k: (_synonyms(v.text(), rng) if hasattr(v, "text") else v) for k, v in parsed.slots.items()}
    if parsed.task == "push":
        slots["where"] = f"to the {slots['side']}" if "side" in slots else f"next to {slots['landmark']}"
    options = [t for t in PARAPHRASES[parsed.task] if not embedded or not t.startswith(("into ", "{"))]
    return rng.choice(options).format(**slots)


def _plain(text: str) -> str:
    """A request without its politeness ("could you please X?" -> "X"), to sit inside a compound sentence."""
    text = re.sub(r"^(could you |please )+", "", text.strip().rstrip("?., "))
    return re.sub(r",? please$", "", text)


def _sub_text(sub) -> str:
    """The sentence of one part of a parsed chain: (task, slots, template)."""
    from vla.envs.tasks import TASKS

    task, slots, template = sub
    values = {k: (v.text() if hasattr(v, "text") else v) for k, v in slots.items()}
    if task == "push":
        values["dest"] = (f"to the {values['side']} side of the table" if "side" in values
                          else f"next to {values['landmark']}")
    return TASKS[task].TEMPLATES[template].format(**values)


def _synonyms(text: str, rng: random.Random) -> str:
    for word, options in SYNONYMS.items():
        text = text.replace(word, rng.choice(options))
    return text


class _Runner:
    """What every session of the evaluation shares: the arguments, one loaded policy, one set of tools."""

    def __init__(self, args):
        from vla.agent.agent import Tools
        from vla.agent.commands.run import tool_weights
        from vla.agent.planner import get_planner

        self.args, self.actor = args, None
        self.tools = Tools(device=args.device, weights=tool_weights(args.tool_weights))
        self.planner = get_planner(args.planner, **({"model": args.llm_model} if args.planner == "llm" else {}))

    def session(self, env, obs):
        from vla.agent.agent import Actor, Executor
        from vla.agent.session import Session

        if self.actor is None:
            self.actor = Actor(self.args.policy, env, device=self.args.device)
        self.actor.env = env
        executor = Executor(env, self.actor, self.tools, retries=self.args.retries, step_budget=self.args.step_budget,
                            home=not self.args.no_home, verify=self.args.verify,
                            point=not self.args.no_point, guard=not self.args.no_guard)
        session = Session(env, executor, self.planner)
        session.start(obs)
        return session


def _ask_questions(session, rng: random.Random, results: dict) -> None:
    """One question per type about the scene as the command left it. A question naming an object the camera does
    not show (fewer than qa_data.MIN_VISIBLE_PIXELS pixels: in the gripper, under another) is asked too, but scored
    apart (`questions_hidden`), as `vla eval tools` leaves such questions out."""
    from vla.models.tools.qa_data import questions, visible_ids

    ann = session.env.unwrapped.scene_annotation()
    seg = session.executor.obs.get("front_seg")
    shown = visible_ids(seg, ann) if seg is not None else {o["id"] for o in ann["objects"]}
    qas = questions(ann, rng, types=QUESTION_TYPES)
    for qtype in QUESTION_TYPES:
        pool = [q for q in qas if q["type"] == qtype]
        if not pool:
            continue
        qa = rng.choice(pool)
        turn = session.ask(qa["question"])
        answered = [r for r in turn.records if r.kind == "question" and r.success]
        if not answered:
            results["question_errors"].append(turn.answer)
            continue
        said = answered[0].output["answer"].strip().lower().rstrip(".")
        right = said == qa["answer"] or said.split()[:1] == qa["answer"].split()[:1]
        visible = all(i in shown for group in qa["refs"] for i in group)
        results["questions" if visible else "questions_hidden"].append(right)


def evaluate(args) -> dict:
    """Run every (split, task, seed) scene's command and its paraphrase once; returns the raw results."""
    from rich.progress import Progress

    splits = [s.strip() for s in args.splits.split(",") if s.strip()]
    results = {**{c: [] for c in CATEGORIES}, "questions": [], "question_errors": [], "plan_ms": [], "checks": [],
               "questions_hidden": [],
               "by_split": {s: [] for s in splits}, "by_task": {}, "failures": []}
    jobs = [(split, task, seed) for split in splits for task in _tasks(args.tasks) for seed in range(args.seeds)]
    runner = _Runner(args)
    with Progress(transient=True, console=_stderr_console()) as progress:
        bar = progress.add_task("agent eval", total=len(jobs))
        for split, task, seed in jobs:
            _run_scene(task, split, seed, runner, results)
            progress.advance(bar)
    return results


def _tasks(text: str) -> list[str]:
    tasks = [t.strip() for t in text.split(",") if t.strip()]
    unknown = [t for t in tasks if t not in SINGLE_TASKS + COMPOUND_TASKS]
    if unknown or not tasks:
        raise VLAError(f"unknown task {(unknown or [''])[0]!r} for --tasks; choose from "
                       f"{', '.join(SINGLE_TASKS + COMPOUND_TASKS)}.")
    return tasks


def _run_scene(task: str, split: str, seed: int, runner: _Runner, results: dict) -> None:
    """The env's own instruction for a sampled scene, then its paraphrase on the same scene (a fresh env each,
    so nothing a session changed carries over); compound commands are followed by questions."""
    from vla.envs import make_env

    rng = random.Random(f"{split}/{task}/{seed}")
    kind = "compound" if task in COMPOUND_TASKS else "single"
    instruction = None
    for category in (kind, f"{kind}_paraphrased"):
        env = make_env(task, split=split, image_size=runner.args.image_size, segmentation=True)
        try:
            obs, info = env.reset(seed=seed)
            instruction = instruction or info["instruction"]
            command = instruction if category == kind else paraphrase(instruction, rng)
            session = runner.session(env, obs)
            turn = session.ask(command)
            success = turn.success if runner.args.verify == "env" else _in_simulator(turn, results["checks"])
            results[category].append(success)
            results["by_task"].setdefault(task, []).append(success)
            results["by_split"][split].append(success)
            results["plan_ms"].append(turn.records[0].ms)
            if not success:
                results["failures"].append({"split": split, "seed": seed, "command": command,
                                            "answer": turn.answer})
            if kind == "compound" and not runner.args.no_questions:
                _ask_questions(session, rng, results)
        finally:
            env.close()


def _in_simulator(turn, checks: list) -> bool:
    """The simulator's verdict on a turn the agent checked by VQA: every manipulation step (its objects and verb)
    succeeded on its last attempt. Each VQA verdict goes to `checks` as (VQA said done, simulator says done, the
    step's verb)."""
    last = {}
    for record in turn.records:
        if record.kind != "manipulate":
            continue
        done, verb = bool(record.output.get("env_success")), record.input["instruction"].split()[0]
        if "vqa_answer" in record.output:
            checks.append((bool(record.success), done, verb))
        last[(json.dumps(record.input.get("objects", {}), sort_keys=True), verb)] = done
    return not turn.plan.refused and bool(last) and all(last.values())


def _agreement(checks: list) -> dict:
    """How (VQA said done, simulator says done, verb) verdicts agree: the share that agree, of the steps VQA called
    done those that were not, and of those done those VQA missed."""
    said = np.array([c[0] for c in checks], dtype=bool)
    done = np.array([c[1] for c in checks], dtype=bool)
    return {"checks": len(checks), "agree_pct": _rate(list(said == done)),
            "said_done_but_not_pct": _rate(list(~done[said])), "missed_done_pct": _rate(list(~said[done]))}


def _stderr_console():
    from rich.console import Console

    return Console(file=sys.stderr)


def _rate(values: list[bool]) -> float | None:
    return round(100.0 * sum(values) / len(values), 1) if values else None


def figures(results: dict, args, seconds: float) -> dict:
    from vla.agent.commands.run import tool_weights

    plan_ms = np.array(results["plan_ms"] or [0.0])
    out = {"policy": args.policy, "planner": args.planner, "seeds": args.seeds, "splits": args.splits.split(","),
           "tool_weights": tool_weights(args.tool_weights),
           "success_pct": {k: _rate(results[k]) for k in CATEGORIES},
           "n": {k: len(results[k]) for k in CATEGORIES},
           "success_pct_by_split": {s: _rate(v) for s, v in results["by_split"].items()},
           "success_pct_by_task": {t: _rate(v) for t, v in results["by_task"].items()},
           "point": not args.no_point,
           "question_accuracy_pct": _rate(results["questions"]), "questions_answered": len(results["questions"]),
           "question_accuracy_with_hidden_pct": _rate(results["questions"] + results["questions_hidden"]),
           "questions_hidden": len(results["questions_hidden"]),
           "question_errors": sorted(set(results["question_errors"]))[:3],
           "plan_ms": {"mean": round(float(plan_ms.mean()), 2), "p50": round(float(np.percentile(plan_ms, 50)), 2),
                       "p95": round(float(np.percentile(plan_ms, 95)), 2)},
           "seconds": round(seconds, 1), "failures": results["failures"][:10]}
    if args.verify != "env":
        out["verify"] = {"mode": args.verify, **_agreement(results["checks"]),
                         "by_verb": {v: _agreement([c for c in results["checks"] if c[2] == v])
                                     for v in sorted({c[2] for c in results["checks"]})}}
    compound = results["compound"] + results["compound_paraphrased"]
    out["compound_target_met"] = bool(compound) and _rate(compound) >= 80.0
    return out


def run(args) -> int:
    if args.seeds < 1:
        raise VLAError(f"--seeds must be >= 1, got {args.seeds}.")
    start = time.perf_counter()
    out = figures(evaluate(args), args, time.perf_counter() - start)
    _print(out)
    if args.json:
        print(json.dumps(out))
    return 0


def _print(out: dict) -> None:
    print(f"agent eval  policy={out['policy']}  planner={out['planner']}  seeds={out['seeds']}  "
          f"splits={','.join(out['splits'])}")
    for key, value in out["success_pct"].items():
        print(f"  {key:<22} success {value if value is not None else '-':>6} %  (n={out['n'][key]})")
    for split, value in out["success_pct_by_split"].items():
        print(f"  split {split:<16} success {value if value is not None else '-':>6} %")
    print("  by task: " + ", ".join(f"{t} {v} %" for t, v in out["success_pct_by_task"].items()))
    acc = out["question_accuracy_pct"]
    print(f"  mid-session questions  accuracy {acc if acc is not None else '-'} % (n={out['questions_answered']}; "
          f"with {out['questions_hidden']} about hidden objects {out['question_accuracy_with_hidden_pct']} %)"
          + (f"  [unanswered: {out['question_errors'][0]}]" if out["question_errors"] else ""))
    print(f"  planner latency        mean {out['plan_ms']['mean']} ms, p95 {out['plan_ms']['p95']} ms")
    if "verify" in out:
        v = out["verify"]
        for name, a in [("all", v), *v["by_verb"].items()]:
            print(f"  {v['mode']} checks, {name:<9} {a['checks']:>4}: agree with the simulator {a['agree_pct']} %, "
                  f"said done when not {a['said_done_but_not_pct']} %, missed a success {a['missed_done_pct']} %")
    print(f"  compound target >= 80 %: {'met' if out['compound_target_met'] else 'NOT met'}  ({out['seconds']} s)")
    for fail in out["failures"][:5]:
        print(f"  failed [{fail['split']} seed {fail['seed']}] {fail['command']!r}: {fail['answer']}")
