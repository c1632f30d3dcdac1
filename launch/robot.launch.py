"""A real arm: a camera driver's colour stream -> vla_policy -> moveit_servo twist commands.

    ros2 launch realsense2_camera rs_launch.py          # or any camera driver
    ros2 launch vla_toolkit robot.launch.py [params:=/path/to/params.yaml]

The policy starts in dry run and disarmed (configs/ros/robot.yaml). Same graph as `vla ros up robot`
(agent/ros/graph.py); tests/agent/ros/test_ros_launch_graph.py keeps them equal.
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
            default_value=PathJoinSubstitution([FindPackageShare("vla_toolkit"), "configs", "ros", "robot.yaml"]),
            description="ROS 2 parameters file for vla_policy",
        ),
        Node(package="vla_toolkit", executable="vla_policy", name="vla_policy",
             parameters=[params], remappings=[("/camera/image_raw", "/camera/camera/color/image_raw")],
             output="screen"),
    ])
