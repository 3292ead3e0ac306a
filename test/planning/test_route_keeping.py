"""Route keeping: a plan's progress laid along the route, easing back from the ego's offset; routes that do not fit
the ego are not used and say why."""

import numpy as np
import pytest
import shapely

from spanvla_ros.planning.route_keeping import follow_route
from spanvla_ros.planning.validator import ValidatorConfig, validate_trajectory
from spanvla_ros.scene import line_frame

DT = 0.5


def drifting_plan(speed: float, heading: float = 0.03, num_poses: int = 10) -> np.ndarray:
    """What the model makes: straight on at the ego's heading (here off the lane's by ``heading``, in the ego frame
    the lane runs at ``-heading``)."""
    distance = speed * DT * np.arange(1, num_poses + 1)
    return np.column_stack([distance, np.zeros_like(distance), np.zeros_like(distance)])


def lane_in_ego_frame(offset: float, heading: float, length: float = 300.0) -> np.ndarray:
    """A straight lane the ego is ``offset`` m left of, its heading ``heading`` rad left of the lane's."""
    s = np.arange(-40.0, length, 2.0)
    lane = np.column_stack([s, np.zeros_like(s)])
    c, si = np.cos(-heading), np.sin(-heading)
    rotated = lane @ np.array([[c, si], [-si, c]])
    return rotated - offset * np.array([np.sin(heading), np.cos(heading)])  # the lane's left normal


def arc_lengths(poses: np.ndarray) -> np.ndarray:
    return np.cumsum(np.hypot(*np.diff(np.vstack([np.zeros(2), poses[:, :2]]), axis=0).T))


def test_a_drifting_plan_returns_to_the_lane_at_the_same_progress():
    plan = drifting_plan(10.0, heading=0.04)
    route = lane_in_ego_frame(offset=1.2, heading=0.04)
    fit = follow_route(plan, route, 30.0, 6.0, 0.8)
    assert fit.reason == "" and fit.offset_m == pytest.approx(1.2, abs=1e-6)
    assert fit.heading_error_rad == pytest.approx(0.04, abs=1e-6)
    line = shapely.LineString(route)
    offsets = np.array([line_frame(line, xy)[1] for xy in fit.poses[:, :2]])
    # The plan held, it would end 1.2 + 50 · sin(0.04) = 3.2 m off the lane; kept, it is back on the centre line
    # after 30 m and stays there, its offset shrinking on the way.
    plan_offsets = np.array([line_frame(line, xy)[1] for xy in plan[:, :2]])
    assert plan_offsets[-1] > 3.0
    assert np.all(np.diff(offsets) <= 1e-9) and np.abs(offsets[6:]).max() < 1e-6
    # Same speed profile: each pose is as far along its path as the model's.
    assert np.allclose(arc_lengths(fit.poses), arc_lengths(plan), atol=0.05)
    assert validate_trajectory(fit.poses, DT, 10.0, ValidatorConfig()).valid


def test_a_curved_route_is_followed_and_headings_run_along_it():
    radius = 60.0
    angles = np.linspace(-0.2, 1.5, 200)
    route = np.column_stack([radius * np.sin(angles), radius * (1 - np.cos(angles))])  # a left bend from the ego
    plan = drifting_plan(8.0)
    fit = follow_route(plan, route, 24.0, 6.0, 0.8)
    distance_from_centre = np.hypot(fit.poses[:, 0], fit.poses[:, 1] - radius)
    assert np.allclose(distance_from_centre, radius, atol=0.05)
    assert np.allclose(fit.poses[:, 2], arc_lengths(plan) / radius, atol=0.02)  # the tangent of the bend


def test_a_standing_plan_stays_where_the_ego_is():
    plan = np.zeros((10, 3))
    fit = follow_route(plan, lane_in_ego_frame(offset=0.8, heading=0.0), 15.0, 6.0, 0.8)
    assert np.allclose(fit.poses[:, :2], 0.0, atol=1e-6)


def test_a_plan_beyond_the_route_end_goes_straight_on():
    plan = drifting_plan(20.0)  # 100 m
    fit = follow_route(plan, lane_in_ego_frame(offset=0.0, heading=0.0, length=40.0), 60.0, 6.0, 0.8)
    assert np.allclose(fit.poses[:, 1], 0.0, atol=1e-6) and np.allclose(fit.poses[:, 0], plan[:, 0], atol=1e-6)


@pytest.mark.parametrize(
    "route, reason",
    [
        (lane_in_ego_frame(offset=8.0, heading=0.0), "8.0 m off the route"),
        (lane_in_ego_frame(offset=0.0, heading=np.pi), "off the ego's heading"),
        (lane_in_ego_frame(offset=0.0, heading=0.0)[40:], "ahead of the ego"),  # starts 40 m ahead
        (lane_in_ego_frame(offset=0.0, heading=0.0)[:10] - [60.0, 0.0], "behind the ego"),
        (np.array([[1.0, 1.0], [1.0, 1.0]]), "no length"),
    ],
)
def test_a_route_that_does_not_fit_the_ego_is_not_used(route, reason):
    fit = follow_route(drifting_plan(10.0), route, 30.0, 6.0, 0.8)
    assert fit.poses is None and reason in fit.reason


def test_a_plan_slows_for_a_tight_bend_ahead_and_not_on_a_straight():
    """A 90° left turn of radius 12 m starting 30 m ahead: the model's 12 m/s plan is slowed in time so that v²κ stays
    within 3 m/s² through the bend, braking at no more than 2 m/s²; on a straight route nothing changes."""
    straight_in = np.column_stack([np.arange(-40.0, 30.0, 1.0), np.zeros(70)])
    angles = np.linspace(0.0, np.pi / 2, 40)[1:]
    bend = np.column_stack([30.0 + 12.0 * np.sin(angles), 12.0 * (1 - np.cos(angles))])
    out = np.column_stack([np.full(60, 42.0), 12.0 + np.arange(1.0, 61.0)])
    route = np.vstack([straight_in, bend, out])
    plan = drifting_plan(12.0)
    fit = follow_route(
        plan, route, 36.0, 6.0, 0.8, dt_s=DT, speed_mps=12.0, max_lateral_acceleration_mps2=3.0,
        curve_deceleration_mps2=2.0,
    )  # fmt: skip
    progress = arc_lengths(fit.poses)
    speeds = np.diff(np.concatenate([[0.0], progress])) / DT
    in_bend = (progress > 30.0 + 2.0) & (progress < 30.0 + 12.0 * np.pi / 2 - 2.0)
    assert in_bend.any() and speeds[in_bend].max() <= np.sqrt(3.0 * 12.0) * 1.1
    assert np.all(np.diff(np.concatenate([[12.0], speeds])) >= -2.0 * DT - 0.2)  # brakes gently, as the bend nears
    assert np.all(progress <= arc_lengths(plan) + 1e-9)  # never faster than the model
    kept = follow_route(
        plan, lane_in_ego_frame(0.0, 0.0), 36.0, 6.0, 0.8, dt_s=DT, speed_mps=12.0,
        max_lateral_acceleration_mps2=3.0,
    )  # fmt: skip
    assert np.allclose(arc_lengths(kept.poses), arc_lengths(plan), atol=1e-6)


def test_a_route_far_beyond_any_map_gives_no_path_but_says_so():
    route = np.array([[1e300, 0.0], [-1e300, 1.0], [0.0, 1e300]])
    fit = follow_route(drifting_plan(10.0), route, 30.0, 6.0, 0.8)
    assert fit.poses is None and fit.reason
