"""A dialogue with the robot on one persistent scene: plan, execute, verify, answer, remember.

`Session.ask(command)` plans the command against the current scene (the planner grounds references and
refuses what it cannot see), runs the steps through the executor, and answers in plain words. It keeps the
turn history, what "it" refers to, and the camera frames before and after each turn, so "what did you just
do?" and "what changed?" are answered from those frames through the perception tools.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from vla import VLAError
from vla.agent.agent import Executor, StepRecord
from vla.agent.planner import Memory, Plan, Step


@dataclass
class Turn:
    """One command and everything that happened for it."""

    command: str
    plan: Plan
    records: list[StepRecord]
    success: bool
    answer: str
    before: np.ndarray | None = field(default=None, repr=False)
    after: np.ndarray | None = field(default=None, repr=False)

    def to_json(self) -> dict:
        return {"command": self.command, "success": self.success,
                "steps": [r.to_json() for r in self.records], "answer": self.answer}


class Session:
    """The agent loop on one env. `recorder` (optional) gets the frames and replies for the video."""

    def __init__(self, env, executor: Executor, planner, recorder=None, logger=None):
        self.env, self.executor, self.planner = env, executor, planner
        self.recorder, self.logger = recorder, logger
        self.memory = Memory()
        self.history: list[Turn] = []
        self.scene: dict = {}  # how the scene was built (task, seed, split), for the log

    def start(self, obs: dict) -> None:
        """Begin (or begin again) on a freshly reset scene."""
        self.executor.obs = obs
        self.memory = Memory()

    def ask(self, command: str) -> Turn:
        """Plan and carry out one command; returns the turn (its answer is what to say back)."""
        start = time.perf_counter()
        if self.recorder is not None:
            self.recorder.command = command
        plan, memory = self.planner.plan(command, self.env.unwrapped.scene_annotation(), self.memory)
        plan_ms = (time.perf_counter() - start) * 1000.0
        before = self.executor.frame().copy()
        records = [StepRecord("plan", f"planner:{plan.planner}", {"command": command},
                              {"steps": [s.to_json() for s in plan.steps]}, not plan.refused, plan_ms)]
        failed = False
        for step in plan.steps:
            record = self._run(step, failed)
            failed = failed or (step.kind == "manipulate" and record.success is False)
            records.append(record)
            self._show(step, record)
        records.extend(self._verify_turn(plan.steps, records[1:]))
        if not plan.refused:
            self.memory = memory
        outcomes = [r.success for r in records[1:] if r.success is not None]
        success = not plan.refused and all(outcomes)
        answer = " ".join(r.said for r in records[1:] if r.said)
        turn = Turn(command, plan, records, success, answer, before, self.executor.frame().copy())
        self.history.append(turn)
        if self.logger is not None:
            self.logger.log_turn(len(self.history) - 1, turn)
        return turn

    def _verify_turn(self, steps: list[Step], records: list[StepRecord]) -> list[StepRecord]:
        """Check at the end that earlier steps' effects still hold; redo undone ones once (when retries allow)."""
        lasting = _lasting(steps, records)
        if not (len(lasting) > 1 or (lasting and lasting[-1] is not steps[-1])):
            return []
        out = [self.executor.recheck(lasting)]
        undone = [s for s in lasting if s.instruction in out[0].output["undone"]]
        if not undone or self.executor.retries < 1:
            return out
        out[0].success, out[0].said = None, out[0].said + " Redoing it."  # the repair decides, not this check
        for step in undone:
            record = self.executor.manipulate(step)
            record.said = ("I did it again: " if record.success else "Redoing failed: ") + record.said
            out.append(record)
        out.append(self.executor.recheck(lasting))
        return out

    def _run(self, step: Step, failed: bool) -> StepRecord:
        if step.kind in ("refuse", "say"):
            return StepRecord(step.kind, None, {"text": step.text}, {"reply": step.reason},
                              step.kind == "say", 0.0, step.reason or "")
        if step.kind == "manipulate":
            if failed:
                return StepRecord("manipulate", f"policy:{self.executor.actor.name}",
                                  {"instruction": step.instruction}, {"skipped": True}, False, 0.0,
                                  f"I skipped '{step.instruction}' because an earlier step failed.")
            return self.executor.manipulate(step)
        if step.kind == "recall":
            return self._recall(step)
        return self.executor.use_tool(step)

    def _recall(self, step: Step) -> StepRecord:
        """"What did you just do?" / "what changed?": the last turn's actions and its before/after frames."""
        start = time.perf_counter()
        last = next((t for t in reversed(self.history) if any(r.kind == "manipulate" for r in t.records)), None)
        if last is None:
            return StepRecord("recall", None, {"question": step.query}, {"reply": "nothing done yet"}, True,
                              0.0, "I haven't moved anything yet in this session.")
        done = [r.said for r in last.records if r.kind == "manipulate"]
        tools = self.executor.tools
        try:
            before = tools("caption", image=last.before)["caption"]
            after = tools("caption", image=last.after)["caption"]
        except VLAError as exc:  # a missing tool must not hide what we know we did
            return StepRecord("recall", "caption", {"frames": "before, after"}, {"error": str(exc)}, False,
                              (time.perf_counter() - start) * 1000.0,
                              " ".join(done) + f" (I couldn't look at the frames: {exc})")
        change = ("I can't see a difference between before and after." if before.strip() == after.strip()
                  else f"Before: {before.strip().rstrip('.')}. After: {after.strip().rstrip('.')}.")
        said = (change if "changed" in (step.query or "") or "different" in (step.query or "")
                else " ".join(done) + " " + change)
        return StepRecord("recall", "caption", {"frames": "before, after", "command": last.command},
                          {"before": before, "after": after, "actions": done}, True,
                          (time.perf_counter() - start) * 1000.0, said)

    def _show(self, step: Step, record: StepRecord) -> None:
        if self.recorder is None:
            return
        lines = [f"{step.kind}" + (f" [{record.tool}]" if record.tool else "") + f": {record.said}"]
        box = record.output.get("box") if step.kind == "locate" else None
        self.recorder.hold(self.executor.frame(), lines, box=box, side=record.image)


def _lasting(steps: list[Step], records: list[StepRecord]) -> list[Step]:
    """Succeeded steps whose effect should last to the end of the turn: not transient (pick, reach) and
    not followed by a later step that moves the same object again."""
    done = [s for s, r in zip(steps, records) if s.kind == "manipulate" and r.success]
    out = []
    for i, step in enumerate(done):
        later = [o for s in done[i + 1:] for o in s.objects.values()]
        if step.task in ("place", "put_all", "stack", "push") and step.objects.get("object") not in later:
            out.append(step)
    return out
