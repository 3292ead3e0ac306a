"""The closed-loop demo with a ROS install: the embedded simulator (``sim_node``, carla-ros-bridge topics, LQR
tracking of the planned path) and the SpanVLA planner, both from ``config/sim_demo.yaml``. Without ``ros2 launch``,
``spanvla demo`` (``make demo``) starts the same two nodes and also records a bag and writes the report.

    ros2 launch spanvla_ros sim_demo.launch.py episodes:=6 output_dir:=/tmp/spanvla_demo
"""

from ament_index_python.packages import get_package_share_directory
from launch.actions import DeclareLaunchArgument, EmitEvent, RegisterEventHandler
from launch.event_handlers import OnProcessExit
from launch.events import Shutdown
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import LifecycleNode, Node

from launch import LaunchDescription


def generate_launch_description() -> LaunchDescription:
    share = get_package_share_directory("spanvla_ros")
    params = LaunchConfiguration("params_file")
    arguments = [
        DeclareLaunchArgument("params_file", default_value=PathJoinSubstitution([share, "config", "sim_demo.yaml"])),
        DeclareLaunchArgument("checkpoint", default_value="model:default"),
        DeclareLaunchArgument("episodes", default_value="4"),
        DeclareLaunchArgument("output_dir", default_value=""),
    ]
    sim = Node(
        package="spanvla_ros",
        executable="sim_node",
        name="spanvla_sim",
        output="screen",
        parameters=[
            params,
            {"episodes": LaunchConfiguration("episodes"), "output_dir": LaunchConfiguration("output_dir")},
        ],
    )
    planner = LifecycleNode(
        package="spanvla_ros",
        executable="planner_node",
        name="spanvla_planner",
        namespace="",
        output="screen",
        parameters=[params, {"checkpoint": LaunchConfiguration("checkpoint")}],
    )
    # The demo ends when the simulator has driven its episodes.
    stop = RegisterEventHandler(OnProcessExit(target_action=sim, on_exit=[EmitEvent(event=Shutdown())]))
    return LaunchDescription([*arguments, sim, planner, stop])
