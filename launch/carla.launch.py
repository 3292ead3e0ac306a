"""SpanVLA against CARLA through the carla-ros-bridge (role name ``ego_vehicle``, synchronous mode).

Start the bridge first (``ros2 launch carla_ros_bridge carla_ros_bridge.launch.py synchronous_mode:=True``) with an
ego carrying an ``rgb_front`` camera and odometry. The planner publishes its path (map frame) on
``/carla/ego_vehicle/spanvla/path`` for a tracking controller. Control mapping, as the bridge expects it:

* ``carla_msgs/CarlaEgoVehicleControl`` on ``/carla/ego_vehicle/vehicle_control_cmd``: a pure-pursuit or MPC tracker
  turns the path into ``steer`` (−1…1, normalised by the maximum steering angle) and ``throttle``/``brake`` (0…1)
  from the speed implied by consecutive poses (0.5 s apart);
* or ``ackermann_msgs/AckermannDrive`` on ``/carla/ego_vehicle/ackermann_cmd`` (with ``carla_ackermann_control``):
  ``steering_angle`` from the path curvature at the lookahead and ``speed`` from the pose spacing.
"""

from ament_index_python.packages import get_package_share_directory
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import LifecycleNode

from launch import LaunchDescription


def generate_launch_description() -> LaunchDescription:
    share = get_package_share_directory("spanvla_ros")
    arguments = [
        DeclareLaunchArgument(
            "autostart",
            default_value="true",
            description="false: wait for a lifecycle manager to configure and activate",
        ),
        DeclareLaunchArgument("params_file", default_value=PathJoinSubstitution([share, "config", "carla.yaml"])),
        DeclareLaunchArgument("checkpoint", default_value="model:default"),
        DeclareLaunchArgument("backend", default_value="torch"),
        DeclareLaunchArgument("role_name", default_value="ego_vehicle"),
        DeclareLaunchArgument("path_topic", default_value="/carla/ego_vehicle/spanvla/path"),
    ]
    role = LaunchConfiguration("role_name")
    planner = LifecycleNode(
        package="spanvla_ros",
        executable="planner_node",
        name="spanvla_planner",
        namespace="",
        output="screen",
        parameters=[
            LaunchConfiguration("params_file"),
            {
                "autostart": LaunchConfiguration("autostart"),
                "checkpoint": LaunchConfiguration("checkpoint"),
                "backend": LaunchConfiguration("backend"),
                "use_sim_time": True,
                "camera_topics": [["/carla/", role, "/rgb_front/image"]],
                "odometry_topic": ["/carla/", role, "/odometry"],
                "command_topic": ["/carla/", role, "/driving_command"],
                "speed_limit_topic": ["/carla/", role, "/speed_limit"],
                "objects_topic": "/carla/markers",
                "route_topic": ["/carla/", role, "/waypoints"],
                "base_frame": role,
                "output_frame": "map",
            },
        ],
        remappings=[
            ("~/output/trajectory", LaunchConfiguration("path_topic")),
            ("~/output/markers", ["/carla/", role, "/spanvla/markers"]),
            ("~/output/reasoning", ["/carla/", role, "/spanvla/reasoning"]),
        ],
    )
    return LaunchDescription([*arguments, planner])
