"""Tools backed by the BLIP-2-style captioning / VQA model (or a local HF BLIP-2 / LLaVA directory)."""
from __future__ import annotations

from .base import IMAGE_SCHEMA, Tool


class _VlmTool(Tool):
    def load(self):
        from vla.models.vlm import load_vlm

        return load_vlm(self.weights, device=self.device, **self.options)


class CaptionTool(_VlmTool):
    name = "caption"
    description = "Describe an image in one sentence: the objects, their colours, sizes and relations."
    input_schema = {"type": "object", "properties": {"image": IMAGE_SCHEMA}, "required": ["image"]}
    output_schema = {"type": "object", "properties": {"caption": {"type": "string"}}, "required": ["caption"]}

    def run(self, image) -> dict:
        return {"caption": self.model.caption(image)}


class VQATool(_VlmTool):
    name = "vqa"
    description = "Answer a short question about an image (colour, count, existence, relations, gripper)."
    input_schema = {
        "type": "object",
        "properties": {"image": IMAGE_SCHEMA,
                       "question": {"type": "string", "minLength": 1, "maxLength": 200,
                                    "description": "e.g. 'what colour is the bowl?'"}},
        "required": ["image", "question"],
    }
    output_schema = {"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"]}

    def run(self, image, question) -> dict:
        return {"answer": self.model.answer(image, question)}
