"""Reports: JSON files and matplotlib plots of a scene with planned and tracked trajectories."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # reports are written headless
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import shapely  # noqa: E402

from ..scene import Scene, TrafficLightState, box_corners, ego_to_world  # noqa: E402

_LIGHT_COLOURS = {
    TrafficLightState.RED: "red",
    TrafficLightState.YELLOW: "orange",
    TrafficLightState.GREEN: "green",
    TrafficLightState.UNKNOWN: "grey",
}


def write_json(data: Any, path: str | Path) -> Path:
    """Write ``data`` as indented JSON, creating parent folders."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, default=_json_default) + "\n")
    return path


def percentiles(values: list[float]) -> dict[str, float]:
    """p50, p99, mean and count of a latency series (NaN when empty)."""
    if not values:
        return {"p50": float("nan"), "p99": float("nan"), "mean": float("nan"), "n": 0}
    array = np.asarray(values, dtype=np.float64)
    return {
        "p50": float(np.percentile(array, 50)),
        "p99": float(np.percentile(array, 99)),
        "mean": float(array.mean()),
        "n": int(array.size),
    }


def plot_scene(
    scene: Scene,
    path: str | Path,
    *,
    plans_ego: dict[str, np.ndarray] | None = None,
    tracked_states: dict[str, np.ndarray] | None = None,
    title: str = "",
    view_m: float = 70.0,
) -> Path:
    """Draw the map, agents (with their futures), the ego, planned poses (ego frame) and tracked paths (world states
    ``[T, >=2]``) to a PNG around the ego."""
    fig, ax = plt.subplots(figsize=(9, 5), dpi=110)
    for geometry in getattr(scene.map.drivable_area, "geoms", [scene.map.drivable_area]):
        if geometry.geom_type == "Polygon":
            ax.fill(*geometry.exterior.xy, color="#d9d9d9", zorder=0)
    for lane in scene.map.lanes:
        colour = "#c96" if lane.oncoming else "#888"
        ax.plot(lane.centerline_xy[:, 0], lane.centerline_xy[:, 1], "--", color=colour, lw=0.6, zorder=1)
    for light in scene.map.traffic_lights:
        lane_polygon = scene.map.lane(light.lane_id).polygon
        ax.fill(*lane_polygon.exterior.xy, color=_LIGHT_COLOURS[light.state], alpha=0.25, zorder=1)
    route = scene.route_centerline_xy
    ax.plot(route[:, 0], route[:, 1], color="#4a90d9", lw=1.0, alpha=0.6, zorder=1, label="route")
    for agent in scene.agents:
        corners = box_corners(agent.poses[:1], agent.length_m, agent.width_m)[0]
        ax.fill(corners[:, 0], corners[:, 1], color="#555" if agent.is_static else "#e07b39", zorder=3)
        if len(agent.poses) > 1:
            ax.plot(agent.poses[:, 0], agent.poses[:, 1], color="#e07b39", lw=0.8, alpha=0.6, zorder=2)
    dims = scene.ego.dimensions
    ego_corners = box_corners(
        np.asarray(scene.ego.pose)[None], dims.length_m, dims.width_m, dims.rear_axle_to_center_m
    )[0]
    ax.fill(ego_corners[:, 0], ego_corners[:, 1], color="#1f77b4", zorder=4, label="ego")
    history = np.asarray(scene.ego.history_poses)
    ax.plot(history[:, 0], history[:, 1], ".-", color="#1f77b4", alpha=0.5, zorder=4)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (name, poses) in enumerate((plans_ego or {}).items()):
        world = ego_to_world(np.asarray(poses), scene.ego.pose)
        ax.plot(
            world[:, 0], world[:, 1], "o-", ms=3, color=colours[(i + 2) % len(colours)], label=f"{name} plan", zorder=5
        )
    for i, (name, states) in enumerate((tracked_states or {}).items()):
        ax.plot(
            states[:, 0],
            states[:, 1],
            "-",
            lw=2.0,
            alpha=0.7,
            color=colours[(i + 2) % len(colours)],
            label=f"{name} tracked",
            zorder=5,
        )
    x0, y0 = float(scene.ego.pose[0]), float(scene.ego.pose[1])
    # Frame the view ahead of the ego, whichever way it faces.
    heading = float(scene.ego.pose[2])
    cx, cy = x0 + 0.35 * view_m * np.cos(heading), y0 + 0.35 * view_m * np.sin(heading)
    half = 0.55 * view_m
    ax.set_xlim(cx - half, cx + half)
    ax.set_ylim(cy - 0.6 * half, cy + 0.6 * half)
    ax.set_aspect("equal")
    ax.set_xlabel("x [m]")
    ax.set_ylabel("y [m]")
    ax.set_title(title or scene.token)
    ax.legend(loc="upper left", fontsize=7)
    return save_figure(fig, path)


def plot_metric_breakdown(rows: dict[str, dict[str, float]], path: str | Path, title: str = "") -> Path:
    """Grouped bars of sub-metrics per planner (``rows[planner][metric]``)."""
    planners = list(rows)
    metrics = [m for m in next(iter(rows.values())) if isinstance(rows[planners[0]][m], int | float)]
    fig, ax = plt.subplots(figsize=(10, 4), dpi=110)
    width = 0.8 / max(len(planners), 1)
    x = np.arange(len(metrics))
    for i, planner in enumerate(planners):
        ax.bar(x + i * width, [rows[planner][m] for m in metrics], width, label=planner)
    ax.set_xticks(x + 0.4 - width / 2, metrics)
    ax.set_ylim(0, 1.05)
    ax.set_title(title)
    ax.legend(fontsize=8)
    return save_figure(fig, path)


def save_figure(fig, path: str | Path) -> Path:
    """Lay out, write the PNG (creating folders) and release the figure."""
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, shapely.Geometry):
        return value.wkt
    if hasattr(value, "value"):
        return value.value
    raise TypeError(f"cannot write {type(value).__name__} to JSON")
