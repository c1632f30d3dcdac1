"""The simulated loop: vla_sim_robot (a task-suite scene as a robot) <-> vla_policy.

    ros2 launch vla_toolkit sim.launch.py [params:=/path/to/params.yaml]

Same graph as `vla ros up sim` (agent/ros/graph.py); tests/agent/ros/test_ros_launch_graph.py keeps them equal.
"""
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare


def generate_launch_description():
    params = LaunchConfiguration("params")
    return LaunchDescription([
        DeclareLaunchArgument(
            "params",
            default_value=PathJoinSubstitution([FindPackageShare("vla_toolkit"), "configs", "ros", "sim.yaml"]),
            description="ROS 2 parameters file for both nodes",
        ),
        Node(package="vla_toolkit", executable="vla_sim_robot", name="vla_sim_robot",
             parameters=[params], remappings=[], output="screen"),
        Node(package="vla_toolkit", executable="vla_policy", name="vla_policy",
             parameters=[params], remappings=[], output="screen"),
    ])
