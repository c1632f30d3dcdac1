"""Perception tools for the policy node: registry tools run on their own worker thread on the latest frame.

A request is JSON {"id": any, "tool": name, "inputs": {...}}; the latest camera frame is passed as `image`.
Every reply is {"id", "tool", "ok": true, "output": {...}} or {"id", "tool", "ok": false, "error": "..."}.
"""
from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

from vla import VLAError

IMAGE_TOOLS = ("caption", "vqa", "classify", "locate")
WEIGHTS_OF = {"caption": "vlm", "vqa": "vlm", "classify": "clip", "locate": "clip"}  # tool -> its model


class Perception:
    def __init__(self, device: str, latest_rgb: Callable, weights: dict[str, str] | None = None,
                 timeout_sec: float = 120.0):
        """`weights`: model ("vlm", "clip") -> checkpoint ("default" = shipped)."""
        self.device, self.latest_rgb, self.timeout_sec = device, latest_rgb, timeout_sec
        self.weights = weights or {}
        self.tools: dict = {}
        self.worker = ThreadPoolExecutor(1, thread_name_prefix="vla-tools")

    def close(self) -> None:
        self.worker.shutdown(wait=False, cancel_futures=True)

    def run(self, tool: str, inputs: dict, request_id=None) -> dict:
        """Run `tool` on the latest frame now (in the calling thread); never raises."""
        reply = {"id": request_id, "tool": tool}
        try:
            if tool not in IMAGE_TOOLS:
                raise VLAError(f"unknown perception tool {tool!r}; allowed: {', '.join(IMAGE_TOOLS)}.")
            rgb = self.latest_rgb()
            if rgb is None:
                raise VLAError("no camera frame has arrived yet.")
            if tool not in self.tools:
                from vla.models.tools import get_tool

                weights = self.weights.get(WEIGHTS_OF[tool], "default")
                self.tools[tool] = get_tool(tool, weights=weights, device=self.device)
            reply.update(ok=True, output=self.tools[tool](image=rgb, **inputs))
        except Exception as exc:  # a tool failure is an answer for the caller, not a node crash
            reply.update(ok=False, error=str(exc) or type(exc).__name__)
        return reply

    def submit(self, tool: str, inputs: dict, done: Callable[[dict], None], request_id=None) -> None:
        """Run on the tool thread and hand the reply to `done` there."""
        self.worker.submit(lambda: done(self.run(tool, inputs, request_id)))

    def call(self, tool: str, inputs: dict) -> dict:
        """Run on the tool thread and wait (bounded) for the reply."""
        future = self.worker.submit(self.run, tool, inputs)
        try:
            return future.result(timeout=self.timeout_sec)
        except TimeoutError:
            return {"id": None, "tool": tool, "ok": False, "error": f"{tool} took longer than {self.timeout_sec} s"}

    def request(self, text: str, done: Callable[[dict], None]) -> None:
        """A JSON request from the request topic -> `done(reply)` once the tool has run."""
        try:
            req = json.loads(text)
            if not isinstance(req, dict) or not isinstance(req.get("tool"), str):
                raise ValueError
            inputs = req.get("inputs") or {}
            if not isinstance(inputs, dict) or "image" in inputs:
                raise ValueError
        except ValueError:
            done({"id": None, "tool": None, "ok": False,
                  "error": 'a request must be JSON {"id": ..., "tool": name, "inputs": {...}} '
                           "(the image is the latest camera frame)."})
            return
        self.submit(req["tool"], inputs, done, req.get("id"))
