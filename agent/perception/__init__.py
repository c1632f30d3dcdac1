"""Training data, training runs and evaluation for the perception tools (CLIP, captioning/VQA, diffusion)."""
