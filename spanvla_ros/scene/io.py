"""Scene and trajectory files: JSON (human-readable, geometry as WKT) and npz (arrays stored natively).

Both hold the same document; npz keeps every array as its own entry and the rest as a JSON string, so nothing is
pickled (``np.load(..., allow_pickle=False)``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import shapely

from .errors import SceneError, TrajectoryError
from .types import (
    Agent,
    AgentKind,
    DrivingCommand,
    EgoState,
    Lane,
    MapData,
    Scene,
    TrafficLight,
    TrafficLightState,
    Trajectory,
    VehicleDimensions,
)

FORMAT_VERSION = 1
_ARRAY_TAG = "__array__"


def scene_to_dict(scene: Scene) -> dict[str, Any]:
    """The scene as a JSON-ready document (arrays as nested lists)."""
    return _arrays_to_lists(_scene_document(scene))


def scene_from_dict(data: dict[str, Any]) -> Scene:
    """Rebuild and validate a scene from :func:`scene_to_dict` output."""
    try:
        return _scene_from_document(data).validate()
    except (KeyError, TypeError, ValueError, shapely.errors.GEOSException) as exc:
        if isinstance(exc, SceneError):
            raise
        raise SceneError(f"not a valid scene document: {type(exc).__name__}: {exc}") from None


def save_scene(scene: Scene, path: str | Path) -> Path:
    """Write ``scene`` to ``.json`` or ``.npz`` (chosen by suffix)."""
    path = Path(path)
    document = _scene_document(scene)
    if path.suffix == ".json":
        path.write_text(json.dumps(_arrays_to_lists(document), indent=1))
    elif path.suffix == ".npz":
        arrays: dict[str, np.ndarray] = {}
        meta = _extract_arrays(document, arrays, "")
        np.savez_compressed(path, __document__=np.array(json.dumps(meta)), **arrays)
    else:
        raise SceneError(f"unknown scene file type '{path.suffix}' for {path}: use .json or .npz")
    return path


def load_scene(path: str | Path) -> Scene:
    """Read a scene written by :func:`save_scene`; raise SceneError for a missing or malformed file."""
    path = Path(path)
    if not path.is_file():
        raise SceneError(f"scene file not found: {path}")
    if path.suffix == ".json":
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise SceneError(f"{path}: not valid JSON ({exc})") from None
        return scene_from_dict(data)
    if path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as archive:
            if "__document__" not in archive:
                raise SceneError(f"{path}: not a scene archive (no __document__ entry)")
            meta = json.loads(str(archive["__document__"]))
            return scene_from_dict(_insert_arrays(meta, archive))
    raise SceneError(f"unknown scene file type '{path.suffix}' for {path}: use .json or .npz")


def save_trajectory(trajectory: Trajectory, path: str | Path) -> Path:
    """Write a trajectory as JSON ``{"poses": [[x, y, heading], ...], "dt_s": ...}`` or ``.npy`` (poses only)."""
    path = Path(path)
    if path.suffix == ".npy":
        np.save(path, trajectory.poses)
    else:
        path.write_text(json.dumps({"poses": trajectory.poses.tolist(), "dt_s": trajectory.dt_s}))
    return path


def load_trajectory(path: str | Path, dt_s: float = 0.5) -> Trajectory:
    """Read a trajectory from JSON (``poses`` and optional ``dt_s``) or ``.npy`` (``[N, 3]``, at ``dt_s``)."""
    path = Path(path)
    if not path.is_file():
        raise TrajectoryError(f"trajectory file not found: {path}")
    if path.suffix == ".npy":
        try:
            return Trajectory(np.load(path, allow_pickle=False), dt_s)
        except ValueError as exc:
            raise TrajectoryError(f"{path}: {exc}") from None
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise TrajectoryError(f"{path}: not valid JSON ({exc})") from None
    if isinstance(data, list):
        return Trajectory(np.asarray(data, dtype=np.float64), dt_s)
    if not isinstance(data, dict) or "poses" not in data:
        raise TrajectoryError(f"{path}: expected {{'poses': [[x, y, heading], ...], 'dt_s': 0.5}}")
    return Trajectory(data["poses"], float(data.get("dt_s", dt_s)))


def _scene_document(scene: Scene) -> dict[str, Any]:
    ego = scene.ego
    return {
        "format_version": FORMAT_VERSION,
        "token": scene.token,
        "dt_s": scene.dt_s,
        "horizon_steps": scene.horizon_steps,
        "command": scene.command.value,
        "route_lane_ids": list(scene.route_lane_ids),
        "route_centerline_xy": np.asarray(scene.route_centerline_xy, dtype=np.float64),
        "reference_poses_ego": None if scene.reference_poses_ego is None else np.asarray(scene.reference_poses_ego),
        "reference_dt_s": scene.reference_dt_s,
        "human_poses_ego": None if scene.human_poses_ego is None else np.asarray(scene.human_poses_ego),
        "synthetic": scene.synthetic,
        "metadata": scene.metadata,
        "map": {
            "drivable_area_wkt": scene.map.drivable_area.wkt,
            "lanes": [
                {
                    "id": lane.id,
                    "centerline_xy": np.asarray(lane.centerline_xy, dtype=np.float64),
                    "width_m": lane.width_m,
                    "left_id": lane.left_id,
                    "right_id": lane.right_id,
                    "successor_ids": list(lane.successor_ids),
                    "oncoming": lane.oncoming,
                    "is_intersection": lane.is_intersection,
                    "speed_limit_mps": lane.speed_limit_mps,
                }
                for lane in scene.map.lanes
            ],
            "traffic_lights": [
                {
                    "id": light.id,
                    "lane_id": light.lane_id,
                    "state": light.state.value,
                    "future_states": [s.value for s in light.future_states],
                }
                for light in scene.map.traffic_lights
            ],
        },
        "agents": [
            {
                "id": agent.id,
                "kind": agent.kind.value,
                "length_m": agent.length_m,
                "width_m": agent.width_m,
                "poses": np.asarray(agent.poses, dtype=np.float64),
                "velocities_mps": np.asarray(agent.velocities_mps, dtype=np.float64),
            }
            for agent in scene.agents
        ],
        "ego": {
            "pose": np.asarray(ego.pose, dtype=np.float64),
            "speed_mps": ego.speed_mps,
            "acceleration_mps2": ego.acceleration_mps2,
            "yaw_rate_radps": ego.yaw_rate_radps,
            "history_poses": np.asarray(ego.history_poses, dtype=np.float64),
            "history_dt_s": ego.history_dt_s,
            "history_speeds_mps": _optional_array(ego.history_speeds_mps),
            "history_accelerations_mps2": _optional_array(ego.history_accelerations_mps2),
            "dimensions": vars(ego.dimensions).copy(),
        },
    }


def _scene_from_document(data: dict[str, Any]) -> Scene:
    if data.get("format_version") != FORMAT_VERSION:
        raise SceneError(f"unsupported scene format_version {data.get('format_version')!r}; expected {FORMAT_VERSION}")
    m = data["map"]
    lanes = tuple(
        Lane(
            id=lane["id"],
            centerline_xy=np.asarray(lane["centerline_xy"], dtype=np.float64),
            width_m=float(lane["width_m"]),
            left_id=lane["left_id"],
            right_id=lane["right_id"],
            successor_ids=tuple(lane["successor_ids"]),
            oncoming=bool(lane["oncoming"]),
            is_intersection=bool(lane["is_intersection"]),
            speed_limit_mps=float(lane["speed_limit_mps"]),
        )
        for lane in m["lanes"]
    )
    lights = tuple(
        TrafficLight(
            light["id"],
            light["lane_id"],
            TrafficLightState(light["state"]),
            tuple(TrafficLightState(s) for s in light["future_states"]),
        )
        for light in m["traffic_lights"]
    )
    agents = tuple(
        Agent(
            agent["id"],
            AgentKind(agent["kind"]),
            float(agent["length_m"]),
            float(agent["width_m"]),
            np.asarray(agent["poses"], dtype=np.float64),
            np.asarray(agent["velocities_mps"], dtype=np.float64),
        )
        for agent in data["agents"]
    )
    e = data["ego"]
    ego = EgoState(
        pose=np.asarray(e["pose"], dtype=np.float64),
        speed_mps=float(e["speed_mps"]),
        acceleration_mps2=float(e["acceleration_mps2"]),
        yaw_rate_radps=float(e["yaw_rate_radps"]),
        history_poses=np.asarray(e["history_poses"], dtype=np.float64).reshape(-1, 3),
        history_dt_s=float(e["history_dt_s"]),
        dimensions=VehicleDimensions(**e["dimensions"]),
        history_speeds_mps=_optional_array(e.get("history_speeds_mps")),
        history_accelerations_mps2=_optional_array(e.get("history_accelerations_mps2")),
    )
    reference = data.get("reference_poses_ego")
    return Scene(
        map=MapData(lanes, shapely.from_wkt(m["drivable_area_wkt"]), lights),
        agents=agents,
        ego=ego,
        route_lane_ids=tuple(data["route_lane_ids"]),
        route_centerline_xy=np.asarray(data["route_centerline_xy"], dtype=np.float64),
        command=DrivingCommand(data["command"]),
        dt_s=float(data["dt_s"]),
        horizon_steps=int(data["horizon_steps"]),
        reference_poses_ego=None if reference is None else np.asarray(reference, dtype=np.float64),
        reference_dt_s=float(data["reference_dt_s"]),
        human_poses_ego=_optional_array(data.get("human_poses_ego")),
        synthetic=bool(data.get("synthetic", False)),
        token=str(data.get("token", "")),
        metadata=dict(data.get("metadata") or {}),
    )


def _optional_array(value: Any) -> np.ndarray | None:
    return None if value is None else np.asarray(value, dtype=np.float64)


def _arrays_to_lists(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, dict):
        return {k: _arrays_to_lists(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_arrays_to_lists(v) for v in value]
    return value


def _extract_arrays(value: Any, arrays: dict[str, np.ndarray], path: str) -> Any:
    """Replace arrays by ``{"__array__": key}`` references, collecting them in ``arrays``."""
    if isinstance(value, np.ndarray):
        key = path.strip("/").replace("/", ".") or "root"
        arrays[key] = value
        return {_ARRAY_TAG: key}
    if isinstance(value, dict):
        return {k: _extract_arrays(v, arrays, f"{path}/{k}") for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_extract_arrays(v, arrays, f"{path}/{i}") for i, v in enumerate(value)]
    return value


def _insert_arrays(value: Any, archive: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {_ARRAY_TAG}:
            key = value[_ARRAY_TAG]
            if key not in archive:
                raise SceneError(f"scene archive lacks array '{key}'")
            return archive[key]
        return {k: _insert_arrays(v, archive) for k, v in value.items()}
    if isinstance(value, list):
        return [_insert_arrays(v, archive) for v in value]
    return value
