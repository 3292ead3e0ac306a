"""The launch files, checked without `launch` (not installable here): every executable they name is installed, every
parameter file loads through `--ros-args --params-file` into the real node, and every remapped topic and parameter
they set is one the node really has."""

import ast
import sys
import time
from pathlib import Path

import pytest
import yaml
from ros_helpers import ROOT, RosProbe, start_node, stop_process, wait_for

pytestmark = pytest.mark.ros
LAUNCH_FILES = sorted((ROOT / "launch").glob("*.launch.py"))
NODES = {"planner_node": ("planner_node", "spanvla_planner"), "sim_node": ("sim_node", "spanvla_sim")}


def launched_nodes(launch_file: Path) -> list[dict]:
    """Each `Node(...)` or `LifecycleNode(...)` call: executable, name, parameter keys set inline and remapped topic
    names (sources)."""
    nodes = []
    for call in ast.walk(ast.parse(launch_file.read_text())):
        if not (isinstance(call, ast.Call) and getattr(call.func, "id", "") in ("Node", "LifecycleNode")):
            continue
        keywords = {k.arg: k.value for k in call.keywords}
        parameters = [
            key.value
            for element in getattr(keywords.get("parameters"), "elts", [])
            if isinstance(element, ast.Dict)
            for key in element.keys
        ]
        remaps = [pair.elts[0].value for pair in getattr(keywords.get("remappings"), "elts", [])]
        nodes.append(
            {
                "executable": keywords["executable"].value,
                "name": keywords["name"].value,
                "parameters": parameters,
                "remaps": remaps,
            }
        )
    return nodes


def test_every_launch_file_names_installed_executables():
    assert {p.name for p in LAUNCH_FILES} == {"planner.launch.py", "carla.launch.py", "sim_demo.launch.py"}
    for launch_file in LAUNCH_FILES:
        nodes = launched_nodes(launch_file)
        assert nodes, f"{launch_file.name} starts no node"
        for node in nodes:
            executable = Path(sys.prefix) / "lib" / "spanvla_ros" / node["executable"]
            assert executable.exists(), f"{launch_file.name}: {executable} is not installed"
            assert node["executable"] in NODES


def _parameters(probe: RosProbe, node_name: str, names: list[str]) -> dict:
    from rcl_interfaces.srv import GetParameters
    from rclpy.parameter import parameter_value_to_python

    client = probe.node.create_client(GetParameters, f"/{node_name}/get_parameters")
    assert client.wait_for_service(timeout_sec=60), f"/{node_name} did not come up"
    future = client.call_async(GetParameters.Request(names=names))
    wait_for(future.done, 60, "get_parameters")
    return {n: parameter_value_to_python(v) for n, v in zip(names, future.result().values, strict=True)}


def _topics(probe: RosProbe, node_name: str) -> set[str]:
    node = probe.node
    published = node.get_publisher_names_and_types_by_node(node_name, "/")
    subscribed = node.get_subscriber_names_and_types_by_node(node_name, "/")
    return {name for name, _ in [*published, *subscribed]}


@pytest.mark.parametrize("params_file", ["planner.yaml", "carla.yaml", "sim_demo.yaml"])
def test_parameter_files_load_into_the_real_planner_node(params_file, tmp_path):
    values = yaml.safe_load((ROOT / "config" / params_file).read_text())["/spanvla_planner"]["ros__parameters"]
    process = start_node("planner_node", params_file=ROOT / "config" / params_file, log=tmp_path / "node.log")
    probe = RosProbe()
    try:
        loaded = _parameters(probe, "spanvla_planner", list(values))
        assert loaded == values, (tmp_path / "node.log").read_text()
        topics = set()
        wait_for(lambda: topics.update(_topics(probe, "spanvla_planner")) or "/diagnostics" in topics, 60, "topics")
        assert values.get("odometry_topic", "/odom") in topics
        assert set(values.get("camera_topics", ["/camera/front/image_raw"])) <= topics
        for node in (n for f in LAUNCH_FILES for n in launched_nodes(f) if n["executable"] == "planner_node"):
            for remap in node["remaps"]:
                assert "/spanvla_planner/" + remap.removeprefix("~/") in topics, remap
            unknown = set(node["parameters"]) - set(_declared(probe, "spanvla_planner"))
            assert not unknown, f"launch files set undeclared planner parameters {unknown}"
    finally:
        probe.close()
        stop_process(process)


def _declared(probe: RosProbe, node_name: str) -> list[str]:
    from rcl_interfaces.srv import ListParameters

    client = probe.node.create_client(ListParameters, f"/{node_name}/list_parameters")
    assert client.wait_for_service(timeout_sec=30)
    future = client.call_async(ListParameters.Request())
    wait_for(future.done, 60, "list_parameters")
    return list(future.result().result.names)


def test_the_demo_parameter_file_loads_into_the_real_sim_node(tmp_path):
    values = yaml.safe_load((ROOT / "config" / "sim_demo.yaml").read_text())["/spanvla_sim"]["ros__parameters"]
    # No planner runs here: the simulator waits for one, so nothing drives while its parameters are read.
    process = start_node("sim_node", {"startup_timeout_s": 30.0}, params_file=ROOT / "config" / "sim_demo.yaml",
                         log=tmp_path / "sim.log")  # fmt: skip
    probe = RosProbe()
    try:
        names = [n for n in values if n != "use_sim_time"]
        loaded = _parameters(probe, "spanvla_sim", names)
        assert loaded == {n: values[n] for n in names}
        sim_nodes = [n for f in LAUNCH_FILES for n in launched_nodes(f) if n["executable"] == "sim_node"]
        declared = set(_declared(probe, "spanvla_sim"))
        for node in sim_nodes:
            assert set(node["parameters"]) <= declared
        time.sleep(0.5)
        topics = _topics(probe, "spanvla_sim")
        assert {"/clock", "/carla/ego_vehicle/odometry", "/carla/ego_vehicle/rgb_front/image"} <= topics
        assert values["plan_topic"] in topics
    finally:
        probe.close()
        stop_process(process)


def test_config_planner_yaml_holds_the_declared_defaults():
    from spanvla_ros.ros.planner_node import PARAMETERS

    values = yaml.safe_load((ROOT / "config" / "planner.yaml").read_text())["/spanvla_planner"]["ros__parameters"]
    declared = {p.name: p.default for p in PARAMETERS if p.name != "inject_fault"}
    assert values == declared
