"""Networks and their pieces: vision encoder, Q-Former, LLM, action tokenizer, VLA, CLIP, VLM, diffusion, tools."""


def load_policy(path="default", device: str = "cpu"):
    """Load a VLA policy checkpoint ("default" = the shipped weights); see vla.models.policy.policy."""
    from vla.models.policy.policy import load_policy as _load

    return _load(path, device)
