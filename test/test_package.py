"""The package as ROS sees it: ament index, share files, package.xml, and rclpy over DDS on this machine."""

import os
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RUN_DEPENDS = {"rclpy", "sensor_msgs", "nav_msgs", "geometry_msgs", "std_msgs", "visualization_msgs", "diagnostic_msgs"}


def test_package_xml_is_format_3_ament_python_with_the_runtime_depends():
    root = ET.parse(ROOT / "package.xml").getroot()
    assert root.attrib["format"] == "3"
    assert root.findtext("name") == "spanvla_ros"
    assert RUN_DEPENDS <= {e.text for e in root.findall("exec_depend")}
    assert root.find("export/build_type").text == "ament_python"


def test_ament_index_finds_the_installed_share_files():
    from ament_index_python.packages import get_package_share_directory

    share = Path(get_package_share_directory("spanvla_ros"))
    assert (share / "package.xml").is_file()
    assert (share / "config" / "scorer.yaml").read_text() == (ROOT / "config" / "scorer.yaml").read_text()


def test_ros_environment_is_local_only():
    assert os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] == "LOCALHOST"


@pytest.mark.ros
def test_rclpy_publishes_a_path_over_dds():
    import rclpy
    from nav_msgs.msg import Path as PathMsg
    from rclpy.executors import SingleThreadedExecutor

    with rclpy.init():
        talker = rclpy.create_node("spanvla_test_talker")
        listener = rclpy.create_node("spanvla_test_listener")
        received = []
        listener.create_subscription(PathMsg, "/spanvla_test/path", received.append, 10)
        publisher = talker.create_publisher(PathMsg, "/spanvla_test/path", 10)
        executor = SingleThreadedExecutor()
        executor.add_node(talker)
        executor.add_node(listener)
        deadline = time.monotonic() + 10.0
        while publisher.get_subscription_count() == 0 and time.monotonic() < deadline:
            executor.spin_once(timeout_sec=0.05)
        message = PathMsg()
        message.header.frame_id = "base_link"
        publisher.publish(message)
        while not received and time.monotonic() < deadline:
            executor.spin_once(timeout_sec=0.05)
        executor.shutdown()
        talker.destroy_node()
        listener.destroy_node()
    assert received and received[0].header.frame_id == "base_link"


def test_the_spanvla_command_is_installed_where_colcon_would_put_it():
    import sys

    prefix = Path(sys.prefix)
    assert (prefix / "bin" / "spanvla").is_file()
    assert (prefix / "lib" / "spanvla_ros" / "spanvla").exists()  # `ros2 run spanvla_ros spanvla`
