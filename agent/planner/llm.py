"""The optional LLM planner: a local Hugging Face chat model decomposes the command by calling tools.

The model sees the same tool schemas the agent executes (`manipulate`, and the perception tools from
`vla.models.tools` without their image inputs, which the agent supplies) through its own chat template's
tool support (`apply_chat_template(messages, tools=...)`). Its tool calls become steps; every manipulation
call is then grounded by the grammar planner, so an LLM plan obeys the same scene checks and canonical
phrasing as the default planner. Only local model directories are loaded; nothing is downloaded.
"""
from __future__ import annotations

import copy
import json
import re
import time
from pathlib import Path

from vla import VLAError
from vla.agent.planner.grounding import Memory, ground
from vla.agent.planner.steps import Plan, Step

SYSTEM = ("You control a robot arm over a table with coloured blocks, cylinders and bowls. Break the user's "
          "command into tool calls, in order. Use `manipulate` with one short instruction in the form "
          "'put the red block in the green bowl', 'stack the red block on the blue block', 'pick up the red "
          "block', 'push the red block to the left side of the table' or 'touch the red block'. Use `vqa` for "
          "questions, `caption` to describe the scene, `locate` for 'where is', `generate` to imagine. Use "
          "`refuse` when the command names an object that is not on the table or cannot be done. Objects on the "
          "table: {objects}.")

#: step kind per tool name the model may call.
KIND_OF_TOOL = {"manipulate": "manipulate", "vqa": "question", "caption": "describe", "locate": "locate",
                "generate": "imagine", "refuse": "refuse"}
#: which argument carries the step's text, per tool.
TEXT_ARG = {"manipulate": "instruction", "vqa": "question", "locate": "text", "generate": "prompt",
            "refuse": "reason", "caption": None}


def tool_schemas() -> list[dict]:
    """OpenAI-style function schemas: `manipulate`, `refuse`, and every perception tool minus its image input."""
    from vla.models.tools import list_tools

    out = [_function("manipulate", "Make the robot do one manipulation, closed loop until it succeeds.",
                     {"instruction": {"type": "string", "description": "e.g. 'put the red block in the green bowl'"}}),
           _function("refuse", "Decline the command and say why in one sentence (nothing moves).",
                     {"reason": {"type": "string"}})]
    for spec in list_tools():
        if spec["name"] not in KIND_OF_TOOL:
            continue
        props = {k: v for k, v in spec["input_schema"].get("properties", {}).items() if v.get("format") != "image"
                 and k in (TEXT_ARG[spec["name"]],)}
        out.append(_function(spec["name"], spec["description"], props))
    return out


def _function(name: str, description: str, properties: dict) -> dict:
    return {"type": "function", "function": {"name": name, "description": description, "parameters": {
        "type": "object", "properties": properties, "required": list(properties)}}}


_CALL_PATTERNS = (
    re.compile(r"<tool_call>\s*(\{.*?\})\s*</tool_call>", re.S),  # Hermes / Qwen 2.5 / Qwen 3 / SmolLM3
    re.compile(r"\[TOOL_CALLS\]\s*(\[.*?\])", re.S),  # Mistral
    re.compile(r"<\|python_tag\|>\s*(.*?)\s*(?:<\|eom_id\|>|<\|eot_id\|>|$)", re.S),  # Llama 3.x
)


def parse_tool_calls(text: str) -> list[tuple[str, dict]]:
    """(tool name, arguments) for each tool call in a chat model's reply, in order; [] when there are none."""
    calls: list[tuple[str, dict]] = []
    for pattern in _CALL_PATTERNS:
        for blob in pattern.findall(text):
            calls.extend(_calls_from_json(blob))
        if calls:
            return calls
    stripped = text.strip()
    if stripped.startswith(("{", "[")):  # a bare JSON call (Llama 3 without the python tag)
        return _calls_from_json(stripped)
    return calls


def _calls_from_json(blob: str) -> list[tuple[str, dict]]:
    try:
        data = json.loads(blob)
    except json.JSONDecodeError:
        return []
    items = data if isinstance(data, list) else [data]
    out = []
    for item in items:
        if isinstance(item, dict) and isinstance(item.get("name"), str):
            args = item.get("arguments", item.get("parameters", {}))
            if isinstance(args, str):
                try:
                    args = json.loads(args)
                except json.JSONDecodeError:
                    args = {}
            out.append((item["name"], args if isinstance(args, dict) else {}))
    return out


def steps_from_calls(calls: list[tuple[str, dict]], command: str) -> list[Step]:
    """Tool calls -> ungrounded steps; manipulation calls are parsed by the grammar into typed steps."""
    from vla.agent.planner import parse_command

    steps: list[Step] = []
    for name, args in calls:
        kind = KIND_OF_TOOL.get(name)
        text = str(args.get(TEXT_ARG.get(name) or "", "")).strip() if TEXT_ARG.get(name) else ""
        if kind is None:
            steps.append(Step("refuse", command, reason=f"The planner asked for an unknown tool {name!r}."))
        elif kind == "manipulate":
            steps.extend(parse_command(text) if text else [Step("refuse", command, reason="An empty instruction.")])
        elif kind == "refuse":
            steps.append(Step("refuse", command, reason=text or "I can't do that."))
        elif kind == "locate":
            from vla.agent.planner.phrases import parse_phrase

            ref = parse_phrase(text.split())
            steps.append(Step("locate", text, query=text, refs={"object": ref} if ref else {}))
        else:
            steps.append(Step(kind, text or command, query=text or command))
    return steps or [Step("refuse", command, reason="I couldn't work out what to do; please rephrase.")]


class LLMPlanner:
    """Plans with a local chat model directory (one with a tool-calling chat template)."""

    name = "llm"

    def __init__(self, model: str | None = None, device: str = "cpu", max_new_tokens: int = 256):
        if not model:
            raise VLAError("--planner llm needs --llm-model DIR: a local Hugging Face chat model directory whose "
                           "chat template supports tools (e.g. Qwen2.5-Instruct, SmolLM3, Llama 3.x Instruct).")
        path = Path(model)
        if not (path / "config.json").is_file():
            raise VLAError(f"LLM planner model {model!r} is not a local model directory (no config.json there).")
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        if not getattr(self.tokenizer, "chat_template", None):
            raise VLAError(f"the tokenizer in {model!r} has no chat template, so it cannot call tools.")
        self.model = AutoModelForCausalLM.from_pretrained(path, local_files_only=True).to(device).eval()
        self.device, self.max_new_tokens = device, max_new_tokens
        self.tools = tool_schemas()

    def prompt(self, command: str, scene: dict) -> str:
        objects = ", ".join(f"{o.get('size') or ''} {o['color']} {o['shape']}".strip()
                            for o in scene.get("objects", [])) or "none"
        messages = [{"role": "system", "content": SYSTEM.format(objects=objects)},
                    {"role": "user", "content": command}]
        return self.tokenizer.apply_chat_template(messages, tools=self.tools, add_generation_prompt=True,
                                                  tokenize=False)

    def generate(self, prompt: str) -> str:
        import torch

        ids = self.tokenizer(prompt, return_tensors="pt", add_special_tokens=False).to(self.device)
        with torch.no_grad():
            out = self.model.generate(**ids, max_new_tokens=self.max_new_tokens, do_sample=False)  # (1, T + N)
        return self.tokenizer.decode(out[0, ids["input_ids"].shape[1]:], skip_special_tokens=False)

    def plan(self, command: str, scene: dict, memory: Memory | None = None) -> tuple[Plan, Memory]:
        memory = copy.deepcopy(memory) if memory is not None else Memory()
        if not command.strip(" .,;!?"):
            from vla.agent.planner import EMPTY_REPLY

            return Plan(command, [Step("refuse", command, reason=EMPTY_REPLY)], self.name), memory
        start = time.perf_counter()
        reply = self.generate(self.prompt(command, scene))
        self.last_reply, self.last_ms = reply, (time.perf_counter() - start) * 1000.0
        steps = ground(steps_from_calls(parse_tool_calls(reply), command), scene, memory)
        plan = Plan(command, steps, self.name)
        if plan.refused:
            plan.steps = [s for s in steps if s.kind == "refuse"]
        return plan, memory
