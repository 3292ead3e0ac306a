"""The SpanVLA planner node with its parameter file; inputs and outputs remappable from the command line.

    ros2 launch spanvla_ros planner.launch.py
    ros2 launch spanvla_ros planner.launch.py backend:=onnxruntime checkpoint:=/path/to/export \
        camera_topic:=/camera/front/image_raw odometry_topic:=/localization/odometry \
        trajectory_topic:=/planning/trajectory
"""

from ament_index_python.packages import get_package_share_directory
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import LifecycleNode

from launch import LaunchDescription


def generate_launch_description() -> LaunchDescription:
    share = get_package_share_directory("spanvla_ros")
    arguments = [
        DeclareLaunchArgument("params_file", default_value=PathJoinSubstitution([share, "config", "planner.yaml"])),
        DeclareLaunchArgument("checkpoint", default_value="model:default"),
        DeclareLaunchArgument("backend", default_value="torch", description="torch | onnxruntime | tensorrt"),
        DeclareLaunchArgument("device", default_value="cpu", description="cpu | cuda"),
        DeclareLaunchArgument("precision", default_value="fp32", description="fp32 | bf16 | fp16 (bf16/fp16 on a GPU)"),
        DeclareLaunchArgument(
            "autostart",
            default_value="true",
            description="false: wait for a lifecycle manager to configure and activate",
        ),
        DeclareLaunchArgument("use_sim_time", default_value="false"),
        DeclareLaunchArgument("camera_topic", default_value="/camera/front/image_raw"),
        DeclareLaunchArgument("odometry_topic", default_value="/odom"),
        DeclareLaunchArgument("command_topic", default_value="/planning/driving_command"),
        DeclareLaunchArgument("speed_limit_topic", default_value="/planning/speed_limit"),
        DeclareLaunchArgument("objects_topic", default_value="/perception/objects"),
        DeclareLaunchArgument("route_topic", default_value="/planning/route"),
        DeclareLaunchArgument("trajectory_topic", default_value="/planning/trajectory"),
        DeclareLaunchArgument("reasoning_topic", default_value="/planning/reasoning"),
        DeclareLaunchArgument("markers_topic", default_value="/planning/markers"),
    ]
    planner = LifecycleNode(
        package="spanvla_ros",
        executable="planner_node",
        name="spanvla_planner",
        namespace="",
        output="screen",
        emulate_tty=True,
        parameters=[
            LaunchConfiguration("params_file"),
            {
                "autostart": LaunchConfiguration("autostart"),
                "checkpoint": LaunchConfiguration("checkpoint"),
                "backend": LaunchConfiguration("backend"),
                "device": LaunchConfiguration("device"),
                "precision": LaunchConfiguration("precision"),
                "use_sim_time": LaunchConfiguration("use_sim_time"),
                "camera_topics": [LaunchConfiguration("camera_topic")],
                "odometry_topic": LaunchConfiguration("odometry_topic"),
                "command_topic": LaunchConfiguration("command_topic"),
                "speed_limit_topic": LaunchConfiguration("speed_limit_topic"),
                "objects_topic": LaunchConfiguration("objects_topic"),
                "route_topic": LaunchConfiguration("route_topic"),
            },
        ],
        remappings=[
            ("~/output/trajectory", LaunchConfiguration("trajectory_topic")),
            ("~/output/reasoning", LaunchConfiguration("reasoning_topic")),
            ("~/output/markers", LaunchConfiguration("markers_topic")),
        ],
    )
    return LaunchDescription([*arguments, planner])
