"""Keeping a plan on the route: the plan's own progress (how far it drives at each pose) laid along the route's lane,
easing back from the ego's current lateral offset. The model's plans hold the car's current heading and leave a drift
uncorrected; replanned at 10 Hz, that drift integrates until the car leaves the road (README "Driving"). A route
(CARLA's ``/carla/<ego>/waypoints``, a navigation stack's path) fixes where the car drives; the model keeps how fast.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import shapely
from scipy.ndimage import uniform_filter1d

from ..scene import Polyline, eased_path, line_frame, wrap_angle

#: The route is extended straight at both ends by this much, so that a plan reaching past its last point still has a
#: lane to follow.
ROUTE_EXTENSION_M = 250.0
#: An ego this far behind the route's first point still follows it (a route starts where the car stood).
ROUTE_START_SLACK_M = 5.0
#: Route coordinates beyond this are absurd (a UTM northing is below 1e7 m; GEOS fails near 1e300).
MAX_EXTENT_M = 1e8
#: Bends are measured on the path every this many metres, their curvature averaged over a window of these steps.
CURVATURE_STEP_M = 1.0
CURVATURE_WINDOW = 5
#: Sub-steps per plan step of the re-timing for bends, and the spacing of its speed caps.
SUBSTEPS = 10
FINE_STEP_M = 0.25


@dataclass(frozen=True)
class RouteFit:
    """The plan laid along the route (``poses`` None when the route does not fit the ego: ``reason`` says why), the
    ego's lateral offset from the route (m, positive left) and its heading relative to the route (rad)."""

    poses: np.ndarray | None
    offset_m: float
    heading_error_rad: float
    reason: str = ""


def follow_route(
    poses_ego: np.ndarray,
    route_ego_xy: np.ndarray,
    return_distance_m: float,
    max_offset_m: float,
    max_heading_error_rad: float,
    *,
    dt_s: float = 0.5,
    speed_mps: float = 0.0,
    max_lateral_acceleration_mps2: float | None = None,
    curve_deceleration_mps2: float = 3.0,
) -> RouteFit:
    """Lay the plan ``poses_ego [N, 3]`` (ego frame, the ego at the origin) along the route ``route_ego_xy [K, 2]``
    (ego frame, in driving order): pose i keeps the plan's arc length to it, on a path that starts at the ego and eases
    (smoothstep over ``return_distance_m``) from the ego's lateral offset to the route's centre line. A route the ego
    is more than ``max_offset_m`` off, points against the ego by more than ``max_heading_error_rad``, or that the ego
    is not alongside, is not used. With ``max_lateral_acceleration_mps2``, the plan (pose i at ``(i+1)·dt_s``, the ego
    at ``speed_mps``) is also slowed where the path bends too tightly for its speed, braking for a bend ahead at up to
    ``curve_deceleration_mps2``: the model does not slow for a turn it does not draw."""
    route_ego_xy = np.asarray(route_ego_xy, dtype=np.float64)
    if not np.isfinite(route_ego_xy).all() or np.abs(route_ego_xy).max(initial=0.0) > MAX_EXTENT_M:
        return RouteFit(None, float("nan"), float("nan"), "the route gives no finite geometry")
    line = _extended(route_ego_xy)
    if line is None:
        return RouteFit(None, float("nan"), float("nan"), "the route has no length")
    s0, offset0, heading = line_frame(line, np.zeros(2))
    heading_error = float(wrap_angle(-heading))
    if not np.isfinite([s0, offset0, heading]).all():
        return RouteFit(None, float("nan"), float("nan"), "the route gives no finite geometry")
    real_start, real_end = ROUTE_EXTENSION_M, line.length - ROUTE_EXTENSION_M
    if not real_start - ROUTE_START_SLACK_M <= s0 <= real_end:
        where = "behind" if s0 > real_end else "ahead of"
        return RouteFit(None, offset0, heading_error, f"the route lies {where} the ego")
    if abs(offset0) > max_offset_m:
        return RouteFit(None, offset0, heading_error, f"the ego is {abs(offset0):.1f} m off the route")
    if abs(heading_error) > max_heading_error_rad:
        return RouteFit(
            None, offset0, heading_error, f"the route runs {np.degrees(abs(heading_error)):.0f}° off the ego's heading"
        )
    path = eased_path(line, s0, offset0, 0.0, return_distance_m)
    if path is None:
        return RouteFit(None, offset0, heading_error, "the route ends at the ego")
    xy = np.asarray(poses_ego, dtype=np.float64)[:, :2]
    along = Polyline(shapely.get_coordinates(path))
    progress = np.cumsum(np.linalg.norm(np.diff(np.vstack([np.zeros(2), xy]), axis=0), axis=1))
    progress = np.minimum(progress, along.length)
    if max_lateral_acceleration_mps2 is not None:
        progress = _slowed_for_bends(
            progress, along, dt_s, speed_mps, max_lateral_acceleration_mps2, curve_deceleration_mps2
        )
    ahead, behind = along.at(progress + 0.5), along.at(progress - 0.5)
    headings = np.arctan2(ahead[:, 1] - behind[:, 1], ahead[:, 0] - behind[:, 0])
    poses = np.column_stack([along.at(progress), headings])
    if not np.isfinite(poses).all():
        return RouteFit(None, offset0, heading_error, "the route gives no finite geometry")
    return RouteFit(poses, offset0, heading_error)


def _slowed_for_bends(
    progress: np.ndarray,
    path: Polyline,
    dt_s: float,
    speed_mps: float,
    max_lateral_acceleration_mps2: float,
    deceleration_mps2: float,
) -> np.ndarray:
    """The plan's arc lengths at its poses, re-timed so that its speed keeps v²·κ within the limit along ``path``
    (reached by braking at ``deceleration_mps2``); wherever the plan is already slower, it stays as planned."""
    grid = np.arange(0.0, path.length, CURVATURE_STEP_M)
    if len(grid) < 3:
        return progress
    xy = path.at(grid)
    headings = np.unwrap(np.arctan2(np.diff(xy[:, 1]), np.diff(xy[:, 0])))
    # Polyline vertices kink the heading: curvature is taken over a few metres.
    curvature = np.abs(uniform_filter1d(np.gradient(headings, CURVATURE_STEP_M), CURVATURE_WINDOW, mode="nearest"))
    cap = np.sqrt(max_lateral_acceleration_mps2 / np.maximum(curvature, 1e-6)).tolist()
    for i in range(len(cap) - 2, -1, -1):  # brake in time for the bends ahead
        cap[i] = min(cap[i], math.sqrt(cap[i + 1] ** 2 + 2 * deceleration_mps2 * CURVATURE_STEP_M))
    # Looked up by index in the loop below (np.interp per sub-step costs more than the rest together).
    fine = np.interp(np.arange(0.0, path.length, FINE_STEP_M), grid[:-1] + 0.5 * CURVATURE_STEP_M, cap).tolist()
    planned_speeds = (np.diff(np.concatenate([[0.0], progress])) / dt_s).tolist()
    substep = dt_s / SUBSTEPS
    s, speed, out = 0.0, max(speed_mps, 0.0), np.empty_like(progress)
    for i, planned in enumerate(planned_speeds):
        for _ in range(SUBSTEPS):
            # A bend found too late is braked for at the same rate, never faster than the plan drives itself.
            allowed = max(fine[min(int(s / FINE_STEP_M), len(fine) - 1)], speed - deceleration_mps2 * substep)
            speed = min(planned, allowed)
            s += speed * substep
        out[i] = s
    return np.minimum(out, progress)


def _extended(route_xy: np.ndarray) -> shapely.LineString | None:
    """The route with repeated points removed and a straight piece of ``ROUTE_EXTENSION_M`` added at each end."""
    if route_xy.ndim != 2 or route_xy.shape[1] != 2 or len(route_xy) < 2:
        return None
    keep = np.concatenate([[True], np.linalg.norm(np.diff(route_xy, axis=0), axis=1) > 1e-3])
    xy = route_xy[keep]
    if len(xy) < 2:
        return None
    first = (xy[1] - xy[0]) / np.linalg.norm(xy[1] - xy[0])
    last = (xy[-1] - xy[-2]) / np.linalg.norm(xy[-1] - xy[-2])
    return shapely.LineString(np.vstack([xy[0] - ROUTE_EXTENSION_M * first, xy, xy[-1] + ROUTE_EXTENSION_M * last]))
