"""Loops: demo collection and datasets, training and evaluation, the agent, ROS 2 nodes, the CLI."""
