"""Optional episode logging to a Rerun recording (`.rrd`): camera frames, the command, each step and its outputs.

Open the file with `rerun out.rrd`. Needs the `rerun-sdk` package (`pip install vla-toolkit[rerun]`).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from vla import VLAError


class RerunLogger:
    """Writes one recording: `camera/front` images on the `frame` timeline, `agent/*` text logs per turn."""

    def __init__(self, path: str | Path):
        try:
            import rerun as rr
        except ImportError:
            raise VLAError("--rerun needs the rerun-sdk package; install it with `pip install rerun-sdk`.") from None
        self.rr, self.path = rr, Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.rec = rr.RecordingStream("vla_agent")
        self.rec.save(str(self.path))
        self.frame = 0

    def on_frame(self, frame: np.ndarray, label: str) -> None:
        self.rec.set_time("frame", sequence=self.frame)
        self.rec.log("camera/front", self.rr.Image(frame))
        self.rec.log("agent/step", self.rr.TextLog(label))
        self.frame += 1

    def log_turn(self, index: int, turn) -> None:
        self.rec.set_time("frame", sequence=self.frame)
        self.rec.log("agent/command", self.rr.TextLog(f"[{index}] {turn.command}"))
        for record in turn.records:
            self.rec.log(f"agent/steps/{record.kind}", self.rr.TextLog(json.dumps(record.to_json())))
        self.rec.log("agent/answer", self.rr.TextLog(turn.answer))

    def close(self) -> None:
        self.rec.flush()
