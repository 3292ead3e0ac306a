"""Frame transforms and oriented boxes on plain numpy arrays (REP-103: x forward, y left, heading counter-clockwise)."""

from __future__ import annotations

import numpy as np
import shapely

# Corner order of every box array: front-left, rear-left, rear-right, front-right (a closed ring when taken in order).
FRONT_LEFT, REAR_LEFT, REAR_RIGHT, FRONT_RIGHT = range(4)


def wrap_angle(angle_rad: np.ndarray | float) -> np.ndarray:
    """Wrap angles to [-pi, pi)."""
    return (np.asarray(angle_rad) + np.pi) % (2.0 * np.pi) - np.pi


def interpolate_poses(knot_times_s: np.ndarray, knots: np.ndarray, times_s: np.ndarray) -> np.ndarray:
    """Poses ``[..., M, 3]`` at ``times_s [M]`` on the piecewise-linear path through ``knots [..., K, 3]`` at the
    increasing ``knot_times_s [K]`` (K >= 2): headings are unwrapped along the path, interpolated, then wrapped; times
    outside the knots hold the end poses, and a time on a knot takes that knot exactly."""
    knot_times_s = np.asarray(knot_times_s, dtype=np.float64)
    knots = np.array(knots, dtype=np.float64)
    knots[..., 2] = np.unwrap(knots[..., 2], axis=-1)
    times = np.clip(np.asarray(times_s, dtype=np.float64), knot_times_s[0], knot_times_s[-1])
    upper = np.clip(np.searchsorted(knot_times_s, times, side="right"), 1, len(knot_times_s) - 1)
    lower = upper - 1
    fraction = (times - knot_times_s[lower]) / (knot_times_s[upper] - knot_times_s[lower])
    fraction = np.where(np.abs(fraction - np.round(fraction)) < 1e-9, np.round(fraction), fraction)[:, None]
    poses = knots[..., lower, :] + fraction * (knots[..., upper, :] - knots[..., lower, :])
    poses[..., 2] = wrap_angle(poses[..., 2])
    return poses


def ego_to_world(poses_ego: np.ndarray, ego_pose: np.ndarray) -> np.ndarray:
    """Poses ``[..., 3]`` given in the frame of ``ego_pose`` (x, y, heading in world) → world poses ``[..., 3]``."""
    x0, y0, h0 = float(ego_pose[0]), float(ego_pose[1]), float(ego_pose[2])
    c, s = np.cos(h0), np.sin(h0)
    out = np.empty_like(np.asarray(poses_ego, dtype=np.float64))
    out[..., 0] = x0 + c * poses_ego[..., 0] - s * poses_ego[..., 1]
    out[..., 1] = y0 + s * poses_ego[..., 0] + c * poses_ego[..., 1]
    out[..., 2] = wrap_angle(poses_ego[..., 2] + h0)
    return out


def world_to_ego(poses_world: np.ndarray, ego_pose: np.ndarray) -> np.ndarray:
    """World poses ``[..., 3]`` → poses in the frame of ``ego_pose``."""
    x0, y0, h0 = float(ego_pose[0]), float(ego_pose[1]), float(ego_pose[2])
    c, s = np.cos(h0), np.sin(h0)
    dx = poses_world[..., 0] - x0
    dy = poses_world[..., 1] - y0
    out = np.empty_like(np.asarray(poses_world, dtype=np.float64))
    out[..., 0] = c * dx + s * dy
    out[..., 1] = -s * dx + c * dy
    out[..., 2] = wrap_angle(poses_world[..., 2] - h0)
    return out


def box_corners(
    poses: np.ndarray, length_m: float | np.ndarray, width_m: float | np.ndarray, center_offset_m: float = 0.0
) -> np.ndarray:
    """Corners ``[..., 4, 2]`` of oriented boxes at ``poses [..., 3]``.

    ``center_offset_m`` is how far the box centre lies ahead of the pose point along the heading (the
    rear-axle-to-centre distance for an ego pose given at the rear axle; 0 for agents whose pose is their centre).
    """
    poses = np.asarray(poses, dtype=np.float64)
    c, s = np.cos(poses[..., 2]), np.sin(poses[..., 2])
    cx = poses[..., 0] + center_offset_m * c
    cy = poses[..., 1] + center_offset_m * s
    # Lengths/widths broadcast against the pose batch shape (pass ``length[:, None]`` for per-agent sizes over time).
    half_l = np.broadcast_to(np.asarray(length_m, dtype=np.float64) / 2.0, cx.shape)
    half_w = np.broadcast_to(np.asarray(width_m, dtype=np.float64) / 2.0, cx.shape)
    corners = np.empty(cx.shape + (4, 2))
    for index, (along, across) in enumerate(((1, 1), (-1, 1), (-1, -1), (1, -1))):
        lx, ly = along * half_l, across * half_w
        corners[..., index, 0] = cx + c * lx - s * ly
        corners[..., index, 1] = cy + s * lx + c * ly
    return corners


def box_centers(poses: np.ndarray, center_offset_m: float = 0.0) -> np.ndarray:
    """Box centres ``[..., 2]`` of poses ``[..., 3]`` whose box centre lies ``center_offset_m`` ahead."""
    poses = np.asarray(poses, dtype=np.float64)
    return poses[..., :2] + center_offset_m * np.stack([np.cos(poses[..., 2]), np.sin(poses[..., 2])], -1)


def lateral_offset(line: shapely.LineString, xy: np.ndarray) -> tuple[float, float]:
    """Where ``xy`` lies relative to a polyline: (arc length of its projection, signed lateral offset — positive on
    the left of the line's direction)."""
    s, offset, _ = line_frame(line, xy)
    return s, offset


def line_frame(line: shapely.LineString, xy: np.ndarray) -> tuple[float, float, float]:
    """``xy`` in a polyline's own frame: (arc length of its projection, signed lateral offset — positive on the left
    of the line's direction, the line's heading there)."""
    xy = np.asarray(xy, dtype=np.float64)
    s = float(line.project(shapely.Point(xy)))
    here = np.asarray(line.interpolate(s).coords[0])
    ahead = np.asarray(line.interpolate(min(s + 1.0, line.length)).coords[0])
    if np.allclose(ahead, here):  # at the end of the line: use the last segment's direction
        ahead = here + (here - np.asarray(line.interpolate(max(s - 1.0, 0.0)).coords[0]))
    tangent = (ahead - here) / max(float(np.linalg.norm(ahead - here)), 1e-9)
    offset = tangent[0] * (xy[1] - here[1]) - tangent[1] * (xy[0] - here[0])
    return s, float(offset), float(np.arctan2(tangent[1], tangent[0]))


class Polyline:
    """Points at arc lengths along a polyline ``xy [K, 2]``: numpy interpolation, where shapely's costs milliseconds
    for a few hundred points on a long line."""

    def __init__(self, xy: np.ndarray) -> None:
        self.xy = xy
        self.s = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(xy, axis=0), axis=1))])
        self.length = float(self.s[-1])

    def at(self, distances: np.ndarray) -> np.ndarray:
        """Points ``[M, 2]`` at ``distances`` (clipped to the line)."""
        return np.column_stack(
            [np.interp(distances, self.s, self.xy[:, 0]), np.interp(distances, self.s, self.xy[:, 1])]
        )


def eased_path(
    route: shapely.LineString, s0: float, offset0: float, target_offset: float, transition_m: float
) -> shapely.LineString | None:
    """A path starting at the ego (lateral ``offset0`` from the route at arc length ``s0``) that eases to
    ``target_offset`` over ``transition_m`` (smoothstep), then follows the route at that offset."""
    s = np.arange(s0, min(s0 + 220.0, route.length), 1.0)
    if len(s) < 3:
        return None
    # shapely's interpolation (not Polyline's): the expert's paths, and so the training data, stay bit for bit.
    base = shapely.get_coordinates(shapely.line_interpolate_point(route, s))
    ahead = shapely.get_coordinates(shapely.line_interpolate_point(route, np.minimum(s + 0.5, route.length)))
    tangent = ahead - base
    tangent /= np.maximum(np.linalg.norm(tangent, axis=1, keepdims=True), 1e-9)
    normal = np.column_stack([-tangent[:, 1], tangent[:, 0]])
    u = np.clip((s - s0) / max(transition_m, 1.0), 0.0, 1.0)
    blend = u * u * (3 - 2 * u)
    offsets = offset0 + (target_offset - offset0) * blend
    return shapely.LineString(base + offsets[:, None] * normal)
