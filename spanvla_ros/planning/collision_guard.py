"""The collision guard: a plan checked against the objects perception reports before it is published, braked along
its own path when it would run into one (the role of Autoware's obstacle stop and emergency braking).

Objects are oriented boxes with velocities in the ego frame at plan time, predicted at constant velocity. The ego's
box, grown by a clearance (and ahead by a time gap at its speed), is swept along the plan and on past its end,
braking to a standstill (at the plan's own braking, the gentlest for a plan as made): a plan that ends clear but too
fast to stop behind what it follows is not clear, so braking starts while it can still be gentle. The sweep is
checked every 0.1 s; it collides where its box overlaps a predicted object that does not first touch the ego's rear
(a car closing in from behind is not braked for: braking would only bring it sooner). Of the plan as made and the plan
braked at each of the guard's decelerations, the guard keeps the gentlest that keeps the time gap, else the gentlest
that stays clear, else (something comes at the ego) the one whose first contact comes latest. The time gap keeps the
car where its training data drove: at an expert's following distance, not bumper to bumper.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import shapely

from ..scene import VehicleDimensions, box_corners, world_to_ego, wrap_angle
from .speed_limit import brake_along_path, distance_under

#: The time step of the contact check.
CHECK_DT_S = 0.1
#: How long braking has to restore a time gap that is already short (a cut-in, a lead braking).
HEADWAY_RECOVERY_S = 2.0


@dataclass(frozen=True)
class Obstacles:
    """Boxes ``[M, 5]`` (centre x, y, heading, length, width) and velocities ``[M, 2]`` (m/s), ego frame at plan
    time, the ego's rear axle at the origin."""

    boxes: np.ndarray
    velocities: np.ndarray

    def __post_init__(self) -> None:
        boxes, velocities = np.asarray(self.boxes, np.float64), np.asarray(self.velocities, np.float64)
        if boxes.ndim != 2 or boxes.shape[1] != 5 or velocities.shape != (len(boxes), 2):
            raise ValueError(
                f"obstacles need boxes [M, 5] and velocities [M, 2], got {boxes.shape}, {velocities.shape}"
            )
        object.__setattr__(self, "boxes", boxes)
        object.__setattr__(self, "velocities", velocities)

    @classmethod
    def in_ego_frame(cls, boxes: np.ndarray, velocities: np.ndarray, pose: np.ndarray) -> Obstacles:
        """Boxes and velocities given in the world frame, seen from the ego at ``pose`` (x, y, heading)."""
        boxes, velocities = np.asarray(boxes, np.float64).reshape(-1, 5), np.asarray(velocities, np.float64)
        local = world_to_ego(boxes[:, :3], np.asarray(pose, dtype=np.float64))
        c, s = np.cos(pose[2]), np.sin(pose[2])
        rotated = velocities.reshape(-1, 2) @ np.array([[c, -s], [s, c]])  # world → ego: rotate by −heading
        return cls(np.column_stack([local[:, :2], wrap_angle(local[:, 2]), boxes[:, 3:]]), rotated)

    def without(self, drop: np.ndarray) -> Obstacles:
        return Obstacles(self.boxes[~drop], self.velocities[~drop])

    def __len__(self) -> int:
        return len(self.boxes)

    def at(self, times_s: np.ndarray) -> np.ndarray:
        """Box corners ``[T, M, 4, 2]`` at each time, every object moving on at its velocity."""
        centres = self.boxes[None, :, :2] + np.asarray(times_s)[:, None, None] * self.velocities[None]
        poses = np.concatenate([centres, np.broadcast_to(self.boxes[None, :, 2:3], centres.shape[:2] + (1,))], axis=2)
        return box_corners(poses, self.boxes[None, :, 3], self.boxes[None, :, 4])


@dataclass(frozen=True)
class GuardResult:
    poses: np.ndarray
    #: The deceleration the plan was braked at (0: kept as made).
    deceleration_mps2: float
    #: When (s after plan time; past the plan's end: the stop beyond it) the plan as made would touch an object or
    #: come within the time gap; None when it keeps clear.
    contact_s: float | None
    #: Whether the kept plan still touches an object (not merely within the time gap).
    unavoidable: bool


def stop_beyond(poses_ego: np.ndarray, dt_s: float, deceleration_mps2: float) -> np.ndarray:
    """The plan followed by a stop along its last segment at ``deceleration_mps2`` from its final speed, one pose
    every ``dt_s``."""
    poses = np.asarray(poses_ego, dtype=np.float64)
    last = poses[-1] - (poses[-2] if len(poses) > 1 else np.zeros(3))
    speed = float(np.hypot(last[0], last[1])) / dt_s
    steps = int(np.ceil(speed / deceleration_mps2 / dt_s))
    if steps == 0:
        return poses
    along = distance_under(dt_s * np.arange(1, steps + 1), speed, 0.0, deceleration_mps2)
    direction = np.array([np.cos(poses[-1, 2]), np.sin(poses[-1, 2])])
    tail = np.column_stack([poses[-1, :2] + along[:, None] * direction, np.full(steps, poses[-1, 2])])
    return np.vstack([poses, tail])


def first_contact(
    poses_ego: np.ndarray,
    dt_s: float,
    obstacles: Obstacles,
    ego: VehicleDimensions = VehicleDimensions(),
    clearance_m: float = 0.5,
    headway_s: float = 0.0,
    from_s: float = 0.0,
) -> float | None:
    """The time (s after plan time, from ``from_s`` on) at which the ego's box first overlaps an object that does not
    come at it from behind; None when the poses stay clear. The box is grown by ``clearance_m`` on every side and,
    ahead, by the distance it covers in ``headway_s`` at its speed then (a time gap to what it follows)."""
    if len(obstacles) == 0:
        return None
    # Checked every ``CHECK_DT_S``: at the plan's own spacing, a head-on pair closing at 30 m/s would pass through.
    substeps = max(1, int(np.ceil(dt_s / CHECK_DT_S - 1e-9)))
    plan = np.vstack([np.zeros(3), np.asarray(poses_ego, dtype=np.float64)])
    plan[:, 2] = np.unwrap(plan[:, 2])
    step_s = dt_s / substeps
    times = step_s * np.arange(1, (len(plan) - 1) * substeps + 1)
    poses = np.column_stack([np.interp(times, dt_s * np.arange(len(plan)), plan[:, k]) for k in range(3)])
    speeds = np.hypot(*np.diff(np.vstack([np.zeros(2), poses[:, :2]]), axis=0).T) / step_s
    ahead = headway_s * speeds
    length, width = ego.length_m + 2 * clearance_m + ahead, ego.width_m + 2 * clearance_m
    centre_offset = ego.rear_axle_to_center_m + ahead / 2
    objects = obstacles.at(times)  # [T, M, 4, 2]
    # Bounding circles first: most objects never come near the sweep, and polygon tests cost.
    heading = np.stack([np.cos(poses[:, 2]), np.sin(poses[:, 2])], axis=1)
    ego_centres = poses[:, :2] + centre_offset[:, None] * heading
    gaps = np.linalg.norm(objects.mean(axis=2) - ego_centres[:, None], axis=2)
    reach = np.hypot(length, width)[:, None] / 2 + np.hypot(obstacles.boxes[:, 3], obstacles.boxes[:, 4])[None] / 2
    near = (gaps <= reach).any(axis=0)
    if not near.any():
        return None
    ego_boxes = shapely.polygons(box_corners(poses, length, width, centre_offset))
    touching = np.zeros(gaps.shape, dtype=bool)
    touching[:, near] = shapely.intersects(ego_boxes[:, None], shapely.polygons(objects[:, near]))
    touching[times < from_s - 1e-9] = False
    touched = touching.any(axis=0)
    if not touched.any():
        return None
    # An object whose first touch comes at the ego's rear is closing in from behind: not the ego's to brake for.
    first = touching.argmax(axis=0)  # [M]: the first touching time of each object
    centres = objects[first, np.arange(len(first))].mean(axis=1)  # [M, 2]
    at, at_heading = poses[first], heading[first]
    offset = centres - (at[:, :2] + ego.rear_axle_to_center_m * at_heading)
    along = np.einsum("mk,mk->m", offset, at_heading) / (ego.length_m + obstacles.boxes[:, 3])
    across = (at_heading[:, 0] * offset[:, 1] - at_heading[:, 1] * offset[:, 0]) / (ego.width_m + obstacles.boxes[:, 4])
    from_behind = (along < 0) & (np.abs(along) >= np.abs(across))
    counted = touched & ~from_behind
    if not counted.any():
        return None
    return float(times[first[counted].min()])


def guard_plan(
    poses_ego: np.ndarray,
    dt_s: float,
    speed_mps: float,
    obstacles: Obstacles,
    decelerations_mps2: tuple[float, ...],
    ego: VehicleDimensions = VehicleDimensions(),
    clearance_m: float = 0.5,
    headway_s: float = 0.0,
) -> GuardResult:
    """Of the plan as made (followed by a stop at the gentlest deceleration) and the plan braked at each of
    ``decelerations_mps2`` (ascending; each followed by a stop at its own rate): the first that keeps the time gap
    ``headway_s`` to every object (from ``HEADWAY_RECOVERY_S`` on: a gap already short cannot open at once); else the
    first that stays clear; else the one whose contact comes latest."""
    poses = np.asarray(poses_ego, dtype=np.float64)
    if len(obstacles) == 0:
        return GuardResult(poses.copy(), 0.0, None, False)
    count = len(decelerations_mps2) + 1

    @functools.cache
    def candidate(index: int) -> tuple[float, np.ndarray, np.ndarray]:
        """(deceleration, plan, sweep) of candidate ``index``: 0 is the plan as made; built when first needed, as a
        clear road needs none of the braked ones."""
        if index == 0:
            return 0.0, poses, stop_beyond(poses, dt_s, decelerations_mps2[0])
        deceleration = decelerations_mps2[index - 1]
        braked = brake_along_path(poses, dt_s, speed_mps, deceleration)
        return deceleration, braked, stop_beyond(braked, dt_s, deceleration)

    @functools.cache
    def touch(index: int) -> float | None:  # each candidate's sweep is checked once for plain contact
        return first_contact(candidate(index)[2], dt_s, obstacles, ego, clearance_m)

    def keeps_gap(index: int) -> float | None:
        """None when the sweep stays clear and keeps the time gap; else when it first fails."""
        late = None
        if headway_s > 0:
            late = first_contact(candidate(index)[2], dt_s, obstacles, ego, clearance_m, headway_s, HEADWAY_RECOVERY_S)
        fails = [t for t in (touch(index), late) if t is not None]
        return min(fails) if fails else None

    hit = keeps_gap(0)
    if hit is None:
        return GuardResult(poses.copy(), 0.0, None, False)
    if headway_s > 0:
        for index in range(1, count):
            if keeps_gap(index) is None:
                return GuardResult(candidate(index)[1], candidate(index)[0], hit, False)
    best, best_contact = None, -1.0
    for index in range(count):
        deceleration, braked, _ = candidate(index)
        contact = touch(index)
        if contact is None:
            return GuardResult(braked, deceleration, hit, False)
        if contact > best_contact:
            best, best_contact = GuardResult(braked, deceleration, hit, True), contact
    return best
