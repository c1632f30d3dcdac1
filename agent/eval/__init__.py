"""Closed-loop policy evaluation: rollouts across worker processes, LeRobot-style eval_info.json, videos."""
