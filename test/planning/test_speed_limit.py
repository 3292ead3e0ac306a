"""A plan held to the road's speed limit: re-timed along its own path, never faster than the limit (an ego above it
comes down at the given rate), slower steps kept as planned."""

import numpy as np
import pytest
import shapely

from spanvla_ros.planning import limit_speed
from spanvla_ros.planning.validator import validate_trajectory

DT = 0.5


def arc_plan(speed: float, curvature: float = 0.005, num_poses: int = 10) -> np.ndarray:
    """Poses along a left arc at a constant speed (ego frame)."""
    s = speed * DT * np.arange(1, num_poses + 1)
    heading = curvature * s
    return np.column_stack([np.sin(heading) / curvature, (1 - np.cos(heading)) / curvature, heading])


def step_speeds(poses: np.ndarray) -> np.ndarray:
    points = np.vstack([np.zeros(2), poses[:, :2]])
    return np.hypot(*np.diff(points, axis=0).T) / DT


def test_a_plan_above_the_limit_comes_down_to_it_on_the_same_path():
    plan = arc_plan(28.0)
    limited = limit_speed(plan, DT, speed_mps=28.0, limit_mps=20.0, deceleration_mps2=2.0)
    mid = DT * np.arange(1, 11) - DT / 2  # each step's average speed is the profile's at its middle
    # Chords of the spline along the arc differ from arc lengths by a hair: the bound holds with a small tolerance.
    assert np.all(step_speeds(limited) <= np.maximum(20.0, 28.0 - 2.0 * mid) + 2.0 * DT / 8 + 0.02)
    assert step_speeds(limited)[-1] == pytest.approx(20.0, abs=0.3)  # corners of the polyline shorten chords
    assert DT * step_speeds(limited).sum() < DT * step_speeds(plan).sum() - 20.0  # much less ground than planned
    # On the planned path: the arc the plan's poses sample (a spline through them, closer to it than their polyline).
    assert np.abs(np.hypot(limited[:, 0], limited[:, 1] - 200.0) - 200.0).max() < 0.02
    path = shapely.LineString(np.vstack([np.zeros(2), plan[:, :2]]))
    assert max(path.distance(shapely.Point(p)) for p in limited[:, :2]) < 0.2  # the chords' sagitta on 14 m steps
    assert np.all(np.diff(limited[:, 2]) > 0)  # headings still follow the left turn
    assert validate_trajectory(limited, DT, 28.0).valid


def test_a_plan_within_the_limit_or_braking_below_it_is_kept():
    plan = arc_plan(15.0)
    assert np.array_equal(limit_speed(plan, DT, 15.0, 20.0, 2.0), plan)
    braking = plan.copy()
    braking[:, 0] = np.cumsum(np.maximum(25.0 - 4.0 * DT * np.arange(1, 11), 0.0) * DT)  # hard braking for a lead
    braking[:, 1:] = 0.0
    limited = limit_speed(braking, DT, 25.0, 20.0, 2.0)
    speeds, planned = step_speeds(limited), step_speeds(braking)
    late = planned <= np.maximum(20.0, 25.0 - 2.0 * DT * np.arange(1, 11))
    assert np.allclose(speeds[late], planned[late])  # where the plan was already slower, it is as planned
    assert np.all(speeds <= planned + 1e-9)


@pytest.mark.parametrize("limit", [0.0, -5.0, float("nan"), float("inf")])
def test_a_limit_that_is_not_a_positive_speed_is_refused(limit):
    with pytest.raises(ValueError, match="speed limit"):
        limit_speed(arc_plan(20.0), DT, 20.0, limit, 2.0)
