"""Captioning and VQA with a local Hugging Face BLIP-2 or LLaVA directory (config.json + processor), through
transformers' own `Blip2ForConditionalGeneration` / `LlavaForConditionalGeneration` and `AutoProcessor`.

Nothing is downloaded: the directory must hold the model and its processor (as `save_pretrained` writes them).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from vla import VLAError

#: model_type -> (transformers class name, caption prompt, question template)
FAMILIES = {
    "blip-2": ("Blip2ForConditionalGeneration", "", "Question: {q} Answer:"),
    "llava": ("LlavaForConditionalGeneration", "USER: <image>\nDescribe the image briefly. ASSISTANT:",
              "USER: <image>\n{q} Answer with one word or phrase. ASSISTANT:"),
}


class HFVLM:
    """The same `caption` / `answer` interface as the project VLM, over a transformers model directory."""

    def __init__(self, model, processor, family: str, device: str = "cpu"):
        self.model, self.processor, self.family, self.device = model.to(device).eval(), processor, family, device

    @torch.no_grad()
    def _generate(self, images, prompts: list[str], max_new_tokens: int) -> list[str]:
        from PIL import Image

        pil = [Image.fromarray(np.ascontiguousarray(im)) for im in images]
        inputs = self.processor(images=pil, text=prompts, return_tensors="pt", padding=True).to(self.device)
        out = self.model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False)
        new = out[:, inputs["input_ids"].shape[1]:] if out.shape[1] > inputs["input_ids"].shape[1] else out
        return [t.strip() for t in self.processor.batch_decode(new, skip_special_tokens=True)]

    def caption(self, image: np.ndarray) -> str:
        return self.captions([image])[0]

    def answer(self, image: np.ndarray, question: str) -> str:
        return self.answers([image], [question])[0]

    def captions(self, images) -> list[str]:
        return self._generate(images, [FAMILIES[self.family][1]] * len(images), 30)

    def answers(self, images, questions: list[str]) -> list[str]:
        return self._generate(images, [FAMILIES[self.family][2].format(q=q) for q in questions], 10)


def load_hf_vlm(path: Path, config: dict, device: str = "cpu") -> HFVLM:
    """Open a local BLIP-2 or LLaVA directory; any other model_type is a clear error."""
    import transformers

    family = config.get("model_type")
    if family not in FAMILIES:
        raise VLAError(f"{str(path)!r} holds a {family!r} model; the caption/VQA tool runs this project's VLM, "
                       f"or a local Hugging Face directory of type {' or '.join(FAMILIES)}.")
    try:
        processor = transformers.AutoProcessor.from_pretrained(str(path), local_files_only=True)
        model = getattr(transformers, FAMILIES[family][0]).from_pretrained(str(path), local_files_only=True)
    except (OSError, ValueError) as exc:
        raise VLAError(f"could not load the {family} directory {str(path)!r}: {str(exc).splitlines()[0][:200]}") \
            from None
    return HFVLM(model, processor, family, device)
