"""Training runners: in-memory data, the training loop with exact resume, and resumable training state."""
