"""CLIP-backed tools: zero-shot classification and localisation of a described object."""
from __future__ import annotations

from .base import IMAGE_SCHEMA, Tool

_TEXT = {"type": "string", "minLength": 1}


class _ClipTool(Tool):
    def load(self):
        from vla.models.clip import load_clip

        return load_clip(self.weights, device=self.device, **self.options)


class ClassifyTool(_ClipTool):
    name = "classify"
    description = "Zero-shot classify an image among text labels with CLIP; returns a probability per label."
    input_schema = {
        "type": "object",
        "properties": {"image": IMAGE_SCHEMA,
                       "labels": {"type": "array", "items": _TEXT, "minItems": 1,
                                  "description": "candidate labels, e.g. ['red block', 'blue bowl']"}},
        "required": ["image", "labels"],
    }
    output_schema = {
        "type": "object",
        "properties": {"label": {"type": "string", "description": "the most probable label"},
                       "probs": {"type": "object", "additionalProperties": {"type": "number"},
                                 "description": "label -> probability, summing to 1"}},
        "required": ["label", "probs"],
    }

    def run(self, image, labels) -> dict:
        probs = self.model.classify(image, list(labels))  # (L,)
        best = int(probs.argmax())
        return {"label": labels[best], "probs": {lab: float(p) for lab, p in zip(labels, probs)}}


class LocateTool(_ClipTool):
    name = "locate"
    description = "Find a described object in an image from CLIP patch-text similarity; returns a box and heatmap."
    input_schema = {
        "type": "object",
        "properties": {"image": IMAGE_SCHEMA,
                       "text": dict(_TEXT, description="the object to find, e.g. 'the red block'")},
        "required": ["image", "text"],
    }
    output_schema = {
        "type": "object",
        "properties": {
            "box": {"type": "array", "items": {"type": "integer"}, "minItems": 4, "maxItems": 4,
                    "description": "[x0, y0, x1, y1] in image pixels around the best-matching region"},
            "center": {"type": "array", "items": {"type": "integer"}, "description": "[x, y] pixel of the peak"},
            "score": {"type": "number", "description": "peak patch-text cosine similarity"},
            "heatmap": {"type": "array", "description": "(h, w) patch grid of similarities in [0, 1]"},
        },
        "required": ["box", "center", "score", "heatmap"],
    }

    def run(self, image, text) -> dict:
        heat, box, center, score = self.model.locate(image, text)
        return {"box": [int(v) for v in box], "center": [int(v) for v in center], "score": float(score),
                "heatmap": heat.round(4).tolist()}
