"""Text-to-image tool backed by the project's diffusion model (or a local Stable Diffusion directory)."""
from __future__ import annotations

from .base import Tool


class GenerateTool(Tool):
    name = "generate"
    description = "Render what a described scene should look like (text-to-image diffusion); returns an image."
    input_schema = {
        "type": "object",
        "properties": {
            "prompt": {"type": "string", "minLength": 1, "description": "e.g. 'a red block in a green bowl'"},
            "seed": {"type": "integer", "minimum": 0, "default": 0},
            "steps": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 25},
        },
        "required": ["prompt"],
    }
    output_schema = {
        "type": "object",
        "properties": {"image": {"type": "array", "format": "image", "description": "uint8 (H, W, 3) RGB"}},
        "required": ["image"],
    }

    def load(self):
        from vla.models.diffusion import load_diffusion

        return load_diffusion(self.weights, device=self.device, **self.options)

    def run(self, prompt, seed, steps) -> dict:
        return {"image": self.model.generate(prompt, seed=seed, steps=steps)}
