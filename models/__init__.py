"""Networks and their pieces: vision encoder, Q-Former, LLM, action tokenizer, VLA, CLIP, VLM, diffusion, tools."""
