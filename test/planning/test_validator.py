"""The trajectory validator: what a controller can follow passes, each kind of bad plan fails the check named for it,
and the stop trajectory always passes (property-based)."""

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from spanvla_ros.planning import stop_poses
from spanvla_ros.planning.validator import CHECKS, ValidatorConfig, path_headings, validate_trajectory

DT = 0.5
T = np.arange(1, 11) * DT
STABLE = settings(deadline=None, max_examples=150, derandomize=True)


def cruise(speed, accel=0.0, curvature=0.0):
    stop_t = speed / -accel if accel < 0 else np.inf  # a braking plan holds its stop point
    tc = np.minimum(T, stop_t)
    distance = speed * tc + 0.5 * accel * tc**2
    heading = curvature * distance
    if abs(curvature) < 1e-9:
        return np.column_stack([distance, np.zeros_like(T), np.zeros_like(T)])
    return np.column_stack([np.sin(heading) / curvature, (1 - np.cos(heading)) / curvature, heading])


def failed(poses, speed, config=ValidatorConfig()):
    return {check.name for check in validate_trajectory(poses, DT, speed, config).failures}


def test_every_check_is_reported_with_value_and_limit():
    result = validate_trajectory(cruise(10.0), DT, 10.0)
    assert [c.name for c in result.checks] == list(CHECKS)
    assert result.valid and result.summary() == "ok"


@STABLE
@given(
    speed=st.floats(0.0, 35.0),
    accel=st.floats(-2.5, 1.5),
    curvature=st.floats(-0.01, 0.01),
)
def test_smooth_driveable_plans_pass(speed, accel, curvature):
    top_speed = speed + max(accel, 0.0) * T[-1]
    assume(top_speed**2 * abs(curvature) < 9.0)  # within the lateral acceleration a car can take
    assert failed(cruise(speed, accel, curvature), speed) == set()


@STABLE
@given(speed=st.floats(0.0, 70.0), deceleration=st.floats(0.5, 8.0), num_poses=st.integers(4, 16))
def test_the_stop_trajectory_passes_from_any_plausible_speed(speed, deceleration, num_poses):
    # Any braking up to the validator's stop-check deceleration (the online planner refuses stronger ones).
    poses = stop_poses(speed, num_poses, DT, deceleration)
    result = validate_trajectory(poses, DT, speed)
    assert result.valid, result.summary()


@STABLE
@given(
    poses=st.lists(
        st.tuples(*[st.floats(allow_nan=True, allow_infinity=True, width=32)] * 3), min_size=10, max_size=10
    ).map(lambda rows: np.array(rows, dtype=np.float64)),
    speed=st.floats(allow_nan=True, allow_infinity=True),
)
def test_any_input_gets_an_answer_and_non_finite_plans_fail(poses, speed):
    result = validate_trajectory(poses, DT, speed)
    if not (np.isfinite(poses).all() and np.isfinite(speed)):
        assert not result.valid and result.failures[0].name == "finite"
    assert all(np.isfinite(c.limit) for c in result.checks)


@pytest.mark.parametrize(
    "poses, speed, check",
    [
        (cruise(10.0) * [[-1, 1, 1]], 10.0, "backward_motion"),  # drives backwards while the ego goes forward
        (cruise(8.0) - [[8.0, 0.0, 0.0]], 8.0, "first_pose_deviation"),  # starts 8 m behind the ego
        (cruise(10.0) + [[0.0, 0.0, 1.2]], 10.0, "first_heading_deviation"),
        (cruise(10.0) + [[0.0, 0.0, 0.5]], 10.0, "heading_consistency"),  # poses point off the way they travel
        (cruise(30.0), 10.0, "velocity_deviation"),
        (cruise(90.0), 90.0, "point_interval"),
        (cruise(20.0, accel=-20.0), 20.0, "deceleration"),
        (np.column_stack([np.full(10, 2.0), np.zeros(10), np.zeros(10)]), 20.0, "forward_length"),  # stops in 2 m
        (cruise(20.0, curvature=0.05), 20.0, "lateral_acceleration"),  # 20 m/s on a 20 m radius
        (cruise(5.0, curvature=0.5), 5.0, "curvature"),
        (cruise(1.0, accel=30.0), 1.0, "acceleration"),
    ],
)
def test_each_kind_of_bad_plan_fails_its_check(poses, speed, check):
    assert check in failed(poses, speed)


def test_a_zigzag_fails_the_turn_and_steering_rate_checks():
    zigzag = cruise(10.0)
    zigzag[:, 1] = np.where(np.arange(10) % 2 == 0, 4.0, -4.0)
    assert {"relative_angle", "steering_rate"} <= failed(zigzag, 10.0)


def test_a_standing_car_with_jitter_passes():
    rng = np.random.default_rng(0)
    jitter = rng.normal(0.0, 0.05, (10, 3))
    assert failed(jitter, 0.0) == set()


def test_limits_must_be_positive():
    with pytest.raises(ValueError, match="max_curvature_1pm"):
        ValidatorConfig(max_curvature_1pm=0.0)


@pytest.mark.parametrize("curvature", [-0.05, 0.0, 0.02, 0.1])
def test_path_headings_are_the_tangent_of_the_plan(curvature):
    plan = cruise(12.0, curvature=curvature)
    biased = plan + [[0.0, 0.0, 0.03]]  # the model's headings off by a small bias, its positions right
    gap = np.angle(np.exp(1j * (path_headings(biased) - plan[:, 2])))  # the arc may turn past pi
    np.testing.assert_allclose(gap, 0.0, atol=2e-3)


def test_path_headings_keep_the_model_heading_where_the_car_stands():
    standing = np.column_stack([np.zeros(10), np.zeros(10), np.full(10, 0.2)])
    np.testing.assert_allclose(path_headings(standing), 0.2)
    stopping = cruise(4.0, accel=-4.0) + [[0.0, 0.0, 0.1]]  # stops after 2 m: the rest stands still
    headings = path_headings(stopping)
    assert abs(headings[0]) < 1e-9 and np.allclose(headings[-3:], 0.1)
