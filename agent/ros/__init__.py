"""ROS 2 deployment: the `vla_policy` and `vla_sim_robot` nodes, their graph, bags and benchmarks.

Importing this package never imports rclpy; only the node modules (`policy_node`, `sim_node`, `spin`,
`bag`) do, so the pure pieces (image conversion, safety, parameters, graph) work without ROS 2.
"""
