"""The VLA policy: vision encoder -> bridge (Q-Former) -> causal LM emitting action tokens."""
